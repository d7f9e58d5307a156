//! Printing: plain tables, latencies, the command line without secrets, verdicts.

use std::time::Duration;

use super::database::redact_url;

/// A latency in milliseconds, or `-`.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

/// `a / b` as `0.57×`, or `-` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}×", a / b) } else { "-".into() }
}

/// "MET" or "MISSED".
pub fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

/// Prints rows as a plain table: columns padded to their widest cell, numbers right-aligned.
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| if i == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        println!("{}", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            println!("{}", rule.join("-|-"));
        }
    }
}

/// This process's command line, with the value of `--key` and passwords in URLs hidden.
pub fn redacted_command_line() -> String {
    redact_args(std::env::args())
}

fn redact_args(args: impl IntoIterator<Item = String>) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push("***".to_owned());
            hide_next = false;
        } else if arg == "--key" {
            hide_next = true;
            out.push(arg);
        } else if arg.starts_with("--key=") {
            out.push("--key=***".to_owned());
        } else {
            out.push(redact_url(&arg));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_passwords_are_hidden_on_the_command_line() {
        let args = ["rapport-bench", "records", "--key", "rk_secret_x", "--database-url", "postgres://u:pw@h/db"];
        assert_eq!(
            redact_args(args.map(String::from)),
            "rapport-bench records --key *** --database-url postgres://u:***@h/db"
        );
        assert_eq!(redact_args(["--key=rk".to_owned()]), "--key=***");
    }

    #[test]
    fn ratios_of_nothing_are_a_dash() {
        assert_eq!(ratio(1.0, 2.0), "0.50×");
        assert_eq!(ratio(1.0, 0.0), "-");
    }
}
