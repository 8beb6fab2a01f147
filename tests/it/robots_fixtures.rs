//! Real-world-style robots.txt files under `tests/fixtures/robots/realworld/`
//! with expected decisions in `<name>.expect` (format in the fixtures README).

use byline::crawl::robots::{RobotsRules, target_url};

const FILES: &[&str] = &["news", "shop", "wiki", "windows", "soft404"];

#[test]
fn realworld_robots_files_decide_as_expected() {
    let dir = format!(
        "{}/tests/fixtures/robots/realworld",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut checks = 0;
    let mut failures = Vec::new();
    for name in FILES {
        let body = std::fs::read(format!("{dir}/{name}.txt")).expect("fixture body");
        let expect =
            std::fs::read_to_string(format!("{dir}/{name}.expect")).expect("fixture expectations");
        for (n, line) in expect.lines().enumerate() {
            let where_ = format!("{name}.expect:{}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["delay", agent, want] => {
                    let got = RobotsRules::parse(&body, agent).crawl_delay();
                    let want = (*want != "-").then(|| want.parse::<f64>().expect("delay number"));
                    if got != want {
                        failures.push(format!("{where_}: crawl-delay {got:?}, want {want:?}"));
                    }
                    checks += 1;
                }
                ["sitemaps", want] => {
                    let got = RobotsRules::parse(&body, "x").sitemaps().len();
                    if got.to_string() != *want {
                        failures.push(format!("{where_}: {got} sitemaps, want {want}"));
                    }
                    checks += 1;
                }
                ["warn", agent, code] => {
                    let rules = RobotsRules::parse(&body, agent);
                    if !rules.warnings().iter().any(|w| w.starts_with(code)) {
                        failures.push(format!("{where_}: no {code} in {:?}", rules.warnings()));
                    }
                    checks += 1;
                }
                [agent, url, verdict, matched] => {
                    let rules = RobotsRules::parse(&body, agent);
                    let url_parsed = target_url(url).expect("fixture URL parses");
                    let d = rules.check(&url_parsed);
                    let want_allowed = match *verdict {
                        "allow" => true,
                        "disallow" => false,
                        other => panic!("{where_}: verdict {other:?}"),
                    };
                    let want_line =
                        (*matched != "-").then(|| matched.parse::<usize>().expect("line"));
                    if d.allowed != want_allowed || d.matched_line != want_line {
                        failures.push(format!(
                            "{where_}: {agent} {url}: got {d:?}, want {verdict} line {matched}"
                        ));
                    }
                    if let Some(theirs) = rules.texting_robots_allowed(&url_parsed) {
                        assert_eq!(theirs, d.allowed, "{where_}: texting_robots disagrees");
                    }
                    checks += 1;
                }
                _ => panic!("{where_}: cannot read {line:?}"),
            }
        }
    }
    println!("realworld robots fixtures: {checks} checks");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checks > 50, "only {checks} checks ran");
}
