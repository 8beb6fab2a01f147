//! The AI agent list (`data/ai-robots.json`, ai.robots.txt, MIT) and our
//! purpose categories for it (`data/ai-agent-purposes.toml`, signals.md §2.2).
//!
//! Both files are embedded at build time; no agent name is written in code.
//! Caveats of the list (signals.md §2.1): 21 names are not RFC 9309 tokens, three
//! differ only by case (de-duplicated here after lower-casing), several are
//! common words, so only whole, case-insensitive values ever match.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use super::evidence::AgentCategory;

const LIST_JSON: &str = include_str!("../../data/ai-robots.json");
const PURPOSES_TOML: &str = include_str!("../../data/ai-agent-purposes.toml");

/// One agent of the list.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The name as first spelled in the list.
    pub name: String,
    /// Lower-cased name (the matching key).
    pub lower: String,
    /// Its categories; `[AiOther]` when the purpose file does not name it.
    pub categories: Vec<AgentCategory>,
}

/// The de-duplicated agent list.
#[derive(Debug)]
pub struct AgentList {
    agents: Vec<Agent>,
    by_lower: HashMap<String, usize>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurposeFile {
    ai_train: Vec<String>,
    ai_search: Vec<String>,
    ai_user_fetch: Vec<String>,
}

static AGENTS: LazyLock<AgentList> = LazyLock::new(|| {
    let list: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(LIST_JSON).expect("data/ai-robots.json is a JSON object");
    let purposes: PurposeFile =
        toml::from_str(PURPOSES_TOML).expect("data/ai-agent-purposes.toml parses");
    let mut cats: HashMap<String, Vec<AgentCategory>> = HashMap::new();
    for (cat, names) in [
        (AgentCategory::AiTrain, &purposes.ai_train),
        (AgentCategory::AiSearch, &purposes.ai_search),
        (AgentCategory::AiUserFetch, &purposes.ai_user_fetch),
    ] {
        for n in names {
            cats.entry(n.to_ascii_lowercase()).or_default().push(cat);
        }
    }
    let mut agents = Vec::new();
    let mut by_lower = HashMap::new();
    // Keep the file's order for stable output; serde_json's preserve_order
    // does not apply to BTreeMap, so re-read the keys in file order.
    let ordered: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(LIST_JSON).expect("data/ai-robots.json is a JSON object");
    debug_assert_eq!(ordered.len(), list.len());
    for name in ordered.keys() {
        let lower = name.trim().to_ascii_lowercase();
        if by_lower.contains_key(&lower) {
            continue;
        }
        let categories = cats
            .get(&lower)
            .cloned()
            .unwrap_or_else(|| vec![AgentCategory::AiOther]);
        by_lower.insert(lower.clone(), agents.len());
        agents.push(Agent {
            name: name.clone(),
            lower,
            categories,
        });
    }
    AgentList { agents, by_lower }
});

/// The embedded agent list.
pub fn agents() -> &'static AgentList {
    &AGENTS
}

impl AgentList {
    /// Every agent, de-duplicated, in file order.
    pub fn all(&self) -> &[Agent] {
        &self.agents
    }

    /// The agent whose whole name equals `value` (trimmed, case-insensitive).
    pub fn lookup(&self, value: &str) -> Option<&Agent> {
        self.by_lower
            .get(&value.trim().to_ascii_lowercase())
            .map(|&i| &self.agents[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_loads_with_case_duplicates_removed() {
        let raw: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(LIST_JSON).unwrap();
        assert_eq!(raw.len(), 166);
        // three names differ only by case (shared/data/README.md)
        assert_eq!(agents().all().len(), 163);
        assert!(agents().lookup("meta-externalagent").is_some());
        assert!(agents().lookup("META-EXTERNALAGENT").is_some());
    }

    #[test]
    fn every_categorised_name_exists_in_the_list() {
        let purposes: PurposeFile = toml::from_str(PURPOSES_TOML).unwrap();
        for n in purposes
            .ai_train
            .iter()
            .chain(&purposes.ai_search)
            .chain(&purposes.ai_user_fetch)
        {
            assert!(agents().lookup(n).is_some(), "{n} is not in ai-robots.json");
        }
    }

    #[test]
    fn categories_follow_the_purpose_file_and_default_to_ai_other() {
        let gpt = agents().lookup("gptbot").unwrap();
        assert_eq!(gpt.categories, vec![AgentCategory::AiTrain]);
        let cohere = agents().lookup("cohere-ai").unwrap();
        assert_eq!(
            cohere.categories,
            vec![AgentCategory::AiTrain, AgentCategory::AiUserFetch]
        );
        let ai2 = agents().lookup("AI2Bot").unwrap();
        assert_eq!(ai2.categories, vec![AgentCategory::AiTrain]);
        // names not in the purpose file are recorded as ai_other
        let other = agents()
            .all()
            .iter()
            .find(|a| a.categories == vec![AgentCategory::AiOther]);
        assert!(other.is_some());
    }

    #[test]
    fn common_words_match_only_as_whole_values() {
        assert!(agents().lookup("Spider").is_some());
        assert!(agents().lookup("Spiderman").is_none());
        assert!(agents().lookup("gptbot/1.0").is_none());
    }
}
