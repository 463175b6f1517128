//! The shipped alert rules with the real tool: `promtool check rules` and
//! `promtool test rules` on packaging/prometheus (the unit tests feed
//! synthetic series and assert which alerts fire and which do not), a pair
//! of alerts (warning, critical) for every check the risks plugin has, and
//! a section of docs/alerts.md for every alert's runbook.

use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/prometheus");

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(DIR)
        .output()
        .expect("promtool (apt-get install prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    said
}

#[test]
fn the_rules_are_valid_and_their_unit_tests_pass() {
    let said = promtool(&["check", "rules", "temboard-agent.rules.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool(&["test", "rules", "temboard-agent.rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn every_check_has_its_alerts_and_every_alert_its_runbook() {
    let rules = std::fs::read_to_string(format!("{DIR}/temboard-agent.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(format!("{DIR}/temboard-agent.rules.test.yml")).unwrap();
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.md")).unwrap();
    use temboard_agent::plugins::risks::judge::{CHECKS, WARNING_ONLY};
    for check in CHECKS {
        for level in [1, 2] {
            let expr = format!("temboard_risk_severity{{check=\"{check}\"}} == {level}");
            // A level the check never reaches has no rule (it could never fire).
            let never = level == 2 && WARNING_ONLY.contains(check);
            assert_eq!(rules.contains(&expr), !never, "{expr}");
        }
        assert!(
            tests.contains(&format!("check=\"{check}\"")),
            "no unit test feeds {check}"
        );
    }
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 29, "{alerts:?}");
    for alert in &alerts {
        assert!(
            docs.contains(&format!("\n## {alert}\n")),
            "docs/alerts.md has no section {alert}"
        );
        let anchor = format!("alerts.md#{}", alert.to_lowercase());
        assert!(rules.contains(&anchor), "{alert}: no runbook {anchor}");
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} is never tested"
        );
    }
}
