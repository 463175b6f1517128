//! PostgreSQL version arithmetic shared by the core and plugins.

/// The 2.x `numeric` version: each dot-separated part of `server_version`
/// zero-padded to two digits, times 100 below 10000 (15.18 → 151800).
pub fn numeric_version(server_version: &str) -> i64 {
    let first = server_version.split_whitespace().next().unwrap_or("");
    let mut digits = String::new();
    for part in first.split('.') {
        let n: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if n.is_empty() {
            break;
        }
        digits.push_str(&format!("{:02}", n.parse::<u32>().unwrap_or(0)));
    }
    if digits.len() == 2 {
        digits.push_str("00"); // "16beta1" reads as 16.0
    }
    let v: i64 = digits.parse().unwrap_or(0);
    if v < 10_000 {
        v * 100
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numeric_version_formula_of_2x() {
        use super::numeric_version as n;
        assert_eq!(n("9.6.3"), 90603);
        assert_eq!(n("10.5"), 100500);
        assert_eq!(n("15.18 (Debian 15.18-0+deb12u1)"), 151800);
        assert_eq!(n("9.4.26"), 90426);
        assert_eq!(n("16beta1"), 160000);
    }
}
