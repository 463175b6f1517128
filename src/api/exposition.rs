//! The Prometheus text exposition builder ([`Exposition`]) the core's
//! `/metrics` and the plugins' metrics hooks write to.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escapes a label value (backslash, double quote, line feed).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Accumulates metric families in exposition order; the core and each
/// plugin's `metrics` hook add to it.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, (String, String, Vec<String>)>,
    /// Series already added (name and labels): a second sample of one is
    /// left out, so two plugins reading the same figure (the risks and the
    /// monitoring collection both know `max_connections`) never make a
    /// duplicate series, which Prometheus would refuse.
    seen: std::collections::HashSet<String>,
}

impl Exposition {
    /// Adds one sample of family `name` (its type and help given by the
    /// first sample); non-finite values are left out, and so is a series
    /// already added (the first value is kept).
    pub fn add(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if !value.is_finite() {
            return;
        }
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let series = if l.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", l.join(","))
        };
        if !self.seen.insert(series.clone()) {
            return;
        }
        let sample = format!("{series} {value}");
        self.families
            .entry(name.to_string())
            .or_insert_with(|| (kind.to_string(), help.to_string(), vec![]))
            .2
            .push(sample);
    }

    /// The exposition text.
    pub fn render(self) -> String {
        self.render_with("")
    }

    /// The text as the temBoard 9.x agent writes it (its
    /// `/monitoring/metrics`): a blank line after each family, `# EOF` at
    /// the end.
    pub fn render_9x(self) -> String {
        let mut s = self.render_with("\n");
        s.push_str("# EOF\n");
        s
    }

    /// Families in name order, each followed by `after`; a family added
    /// with an empty kind is untyped (no `# TYPE` line).
    fn render_with(self, after: &str) -> String {
        let mut s = String::new();
        for (name, (kind, help, samples)) in self.families {
            let _ = writeln!(s, "# HELP {name} {help}");
            if !kind.is_empty() {
                let _ = writeln!(s, "# TYPE {name} {kind}");
            }
            for x in samples {
                let _ = writeln!(s, "{x}");
            }
            s.push_str(after);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut o = Exposition::default();
        o.add("x_total", "counter", "An x.", &[("a", "q\"u\\o\nte")], 3.0);
        o.add("x_total", "counter", "An x.", &[("a", "b")], 4.5);
        o.add("y", "gauge", "A y.", &[], f64::NAN);
        o.add("x_total", "counter", "An x.", &[("a", "b")], 9.0);
        let text = o.render();
        assert_eq!(text, "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"q\\\"u\\\\o\\nte\"} 3\nx_total{a=\"b\"} 4.5\n");
    }
}
