//! Why a discovered link or a frontier URL was not fetched: the stored
//! `skip_reason` strings as a type (docs/signals.md, "Reason code index").

use std::str::FromStr;

macro_rules! reasons {
    ($($variant:ident = $text:literal,)*) => {
        /// One skip reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SkipReason {
            $($variant,)*
        }

        impl SkipReason {
            /// Every reason.
            pub const ALL: &'static [SkipReason] = &[$(SkipReason::$variant,)*];

            /// The reason as stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(SkipReason::$variant => $text,)*
                }
            }
        }
    };
}

reasons! {
    Nofollow = "nofollow",
    Scheme = "scheme",
    Scope = "scope",
    TrapDepth = "trap.depth",
    TrapUrlLength = "trap.url_length",
    TrapPathDepth = "trap.path_depth",
    TrapRepeatedSegment = "trap.repeated_segment",
    TrapQueryParams = "trap.query_params",
    TrapOriginCap = "trap.origin_cap",
    BudgetUrlShape = "budget.url_shape",
    RobotsDisallow = "robots.disallow",
    RobotsUnavailable = "robots.unavailable",
    RobotsUnreachable = "robots.unreachable",
    RobotsRedirectLimit = "robots.redirect_limit",
    RobotsRedirectDisallowed = "robots.redirect_disallowed",
}

/// A stored string that is not a skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown skip reason `{0}`")]
pub struct UnknownReason(pub String);

impl FromStr for SkipReason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<SkipReason, UnknownReason> {
        SkipReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_string()))
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_unknown_strings_are_errors() {
        for r in SkipReason::ALL {
            assert_eq!(r.as_str().parse::<SkipReason>(), Ok(*r));
        }
        assert!("trap.deep".parse::<SkipReason>().is_err());
    }
}
