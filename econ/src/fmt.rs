//! Number formatting and markdown tables. Numbers are printed with a few significant digits:
//! the report must read well and must not change from last-bit float noise.

/// `x` with `sig` significant digits, plain notation for 1e-4 <= |x| < 1e9, else scientific.
pub fn sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "n/a".into()
        } else {
            "∞".into()
        };
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..9).contains(&mag) {
        return format!("{:.*e}", sig.saturating_sub(1), x);
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let s = format!("{:.*}", decimals, x);
    group_thousands(&s)
}

/// A count (rounded to a whole number), e.g. `24,576`.
pub fn count(x: f64) -> String {
    group_thousands(&format!("{:.0}", x))
}

/// A plain number: whole numbers without decimals, others with 4 significant digits and no
/// trailing zeros.
pub fn num(x: f64) -> String {
    if x.is_finite() && x == x.round() && x.abs() < 1e15 {
        return count(x);
    }
    let s = sig(x, 4);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// US dollars, e.g. `$1,234` or `$0.0123`.
pub fn usd(x: f64) -> String {
    if x < 0.0 {
        format!("−${}", sig(-x, 3))
    } else {
        format!("${}", sig(x, 3))
    }
}

/// A share as a percentage, e.g. `12.3%`.
pub fn pct(x: f64) -> String {
    format!("{}%", sig(100.0 * x, 3))
}

/// Inserts thousands separators into the integer part of a plain decimal string.
fn group_thousands(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("−", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    if int.len() <= 3 {
        return s.replacen('-', "−", 1);
    }
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// A markdown table: a header row and rows of cells.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out.push_str(&line(&vec!["---".to_string(); self.header.len()]));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits_and_grouping() {
        assert_eq!(sig(1234.5678, 3), "1,235");
        assert_eq!(sig(12.345, 3), "12.3");
        assert_eq!(sig(0.012345, 3), "0.0123");
        assert_eq!(sig(0.0, 3), "0");
        assert_eq!(sig(1234567.0, 3), "1,234,567");
        assert_eq!(sig(2.5e-7, 2), "2.5e-7");
        assert_eq!(usd(-3.0), "−$3.00");
        assert_eq!(pct(0.5), "50.0%");
        assert_eq!(count(32.0), "32");
        assert_eq!(num(0.0310), "0.031");
        assert_eq!(num(141000.0), "141,000");
        assert_eq!(num(4.3e-19), "4.300e-19");
    }
}
