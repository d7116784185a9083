//! The results table, on the terminal and in the README.

use crate::{Options, Row};
use std::path::Path;

pub const START: &str = "<!-- bench:start -->";
pub const END: &str = "<!-- bench:end -->";

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|v| v.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB")
}

pub fn print_row(row: &Row, floor_rps: f64) {
    let history = match row.rows_missing {
        None => String::new(),
        Some(0) => "  history: every answered call has its row".to_owned(),
        Some(n) => format!("  history: {n} ROWS MISSING"),
    };
    println!(
        "{:<44} {:>10.0} req/s  {:>5.2}× floor  p50 {:>7.2} ms  p99 {:>7.2} ms  RSS {:>5.1} MiB{}{}",
        row.scenario.replace('`', ""),
        row.load.requests_per_sec,
        row.load.requests_per_sec / floor_rps,
        row.load.p50_ms,
        row.load.p99_ms,
        row.rss_mib,
        non_2xx(&row.load),
        history,
    );
}

/// ` (N non-2xx)` after a run that had such answers, else nothing. A refused call (a 429 once
/// an allowance is spent) is cheaper than an answered one: its figures would measure refusals.
pub fn non_2xx(load: &crate::wrk::Load) -> String {
    match load.non_2xx {
        0 => String::new(),
        n => format!(" ({} non-2xx)", thousands(n as f64)),
    }
}

pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn table(rows: &[Row], scale: Option<&[(String, String)]>, options: &Options) -> String {
    let floor = rows.first().map_or(1.0, |r| r.load.requests_per_sec);
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = format!(
        "Measured {date} on {}, wrk with {} threads and {} connections for {} per scenario, \
         on loopback (wrk shares the machine; so does PostgreSQL, where it runs).\n\n",
        machine(),
        options.threads,
        options.connections,
        options.duration
    );
    out.push_str("| scenario | database | req/s | × floor | p50 | p99 | peak RSS | history rows |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let mut history = match row.rows_missing {
            None => "—".to_owned(),
            Some(0) => "all present".to_owned(),
            Some(n) => format!("**{n} missing**"),
        };
        history.push_str(&non_2xx(&row.load));
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} ms | {:.2} ms | {:.0} MiB | {} |\n",
            row.scenario,
            row.database,
            thousands(row.load.requests_per_sec),
            row.load.requests_per_sec / floor,
            row.load.p50_ms,
            row.load.p99_ms,
            row.rss_mib,
            history
        ));
    }
    if let Some(scale) = scale {
        out.push_str("\n| scale run | result |\n|---|---|\n");
        for (name, result) in scale {
            out.push_str(&format!("| {name} | {result} |\n"));
        }
    }
    out
}

pub fn write_readme(path: &Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        return Err(format!("{} has no {START} … {END} markers", path.display()));
    };
    let updated = format!("{}{START}\n{table}{}", &text[..start], &text[end..]);
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
