//! Runs wrk and reads its report.

use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Load {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub non_2xx: u64,
}

pub struct Wrk<'a> {
    pub threads: u32,
    pub connections: u32,
    pub duration: &'a str,
    pub scratch: &'a Path,
}

/// A request to repeat: wrk sends it as fast as the server answers.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

impl Wrk<'_> {
    pub fn run(&self, name: &str, request: &Request) -> Result<Load, String> {
        let script = self.scratch.join(format!("{name}.lua"));
        let mut lua = format!("wrk.method = {}\n", lua_string(request.method));
        for (header, value) in &request.headers {
            lua.push_str(&format!(
                "wrk.headers[{}] = {}\n",
                lua_string(header),
                lua_string(value)
            ));
        }
        if let Some(body) = &request.body {
            lua.push_str(&format!("wrk.body = {}\n", lua_string(body)));
        }
        std::fs::write(&script, lua)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let output = Command::new("wrk")
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}", self.duration))
            .arg("--latency")
            .arg("-s")
            .arg(&script)
            .arg(&request.url)
            .output()
            .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "wrk failed: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        parse(&text).ok_or_else(|| format!("cannot read wrk's report:\n{text}"))
    }
}

fn lua_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

fn parse(report: &str) -> Option<Load> {
    let mut load = Load::default();
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rps, ..] => load.requests_per_sec = rps.parse().ok()?,
            ["50%", latency] => load.p50_ms = millis(latency)?,
            ["99%", latency] => load.p99_ms = millis(latency)?,
            [count, "requests", "in", ..] => load.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => load.non_2xx = count.parse().ok()?,
            _ => {}
        }
    }
    (load.requests > 0).then_some(load)
}

fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:1/x\n  2 threads and 32 connections\n  Latency Distribution\n     50%  123.00us\n     75%  1.00ms\n     90%  2.00ms\n     99%    1.78ms\n  1573312 requests in 10.00s, 190.06MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec: 157331.13\nTransfer/sec:     19.00MB\n";
        let load = parse(report).expect("parsed");
        assert_eq!(load.requests, 1_573_312);
        assert_eq!(load.non_2xx, 7);
        assert!((load.p50_ms - 0.123).abs() < 1e-9);
        assert!((load.p99_ms - 1.78).abs() < 1e-9);
        assert!((load.requests_per_sec - 157_331.13).abs() < 1e-6);
    }
}
