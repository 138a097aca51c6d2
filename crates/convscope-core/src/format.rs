//! Numbers as both faces print them: tables in the terminal, labels in the window.

/// 1234567 → "1.23 M"; MACs read better rounded than grouped.
pub fn human_count(n: i64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// Digits grouped by thousands, as parameter counts are usually quoted.
pub fn grouped(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_quote_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(-11_689_512), "-11,689,512");
        assert_eq!(human_count(950), "950");
        assert_eq!(human_count(1_500), "1.5 k");
        assert_eq!(human_count(4_089_184_256), "4.09 G");
        assert_eq!(human_count(25_557_032), "25.56 M");
    }
}
