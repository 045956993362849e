//! The series as CSV, written by the `csv` crate (quoting as RFC 4180 asks).

use std::collections::BTreeSet;

use crate::series::Second;

const COLUMNS: [&str; 7] = [
    "t",
    "requests",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "errors",
    "active_users",
];

/// The series as CSV: `t,requests,p50_ms,p95_ms,p99_ms,errors,active_users`, then one
/// `errors_<key>` column per error key seen anywhere in the series (sorted by key). One row per
/// element, in the given order; `errors` is the total over all keys. Latencies are written as
/// Rust prints them (`10`, `1.5`); non-finite ones as empty fields.
pub fn to_csv(series: &[Second]) -> anyhow::Result<String> {
    let keys: BTreeSet<&str> = series
        .iter()
        .flat_map(|s| s.errors.keys().map(String::as_str))
        .collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(keys.iter().map(|k| format!("errors_{k}")));
    out.write_record(header)?;
    for s in series {
        let fields = [
            s.t.to_string(),
            s.requests.to_string(),
            latency(s.p50_ms),
            latency(s.p95_ms),
            latency(s.p99_ms),
            s.error_count().to_string(),
            s.active_users.to_string(),
        ];
        let by_key = keys
            .iter()
            .map(|k| s.errors.get(*k).copied().unwrap_or(0).to_string());
        out.write_record(fields.into_iter().chain(by_key))?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

fn latency(ms: f64) -> String {
    if ms.is_finite() {
        ms.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, requests: u64, errors: &[(&str, u64)], users: u64) -> Second {
        Second {
            t,
            requests,
            p50_ms: 10.0 + t as f64,
            p95_ms: 20.0 + t as f64,
            p99_ms: 40.0 + t as f64,
            errors: errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            active_users: users,
        }
    }

    #[test]
    fn csv_has_one_column_per_error_key_sorted_and_zero_where_absent() {
        let series = vec![
            second(0, 10, &[("503", 2)], 5),
            second(1, 12, &[("timeout", 1), ("503", 1)], 6),
            second(2, 9, &[], 6),
        ];
        let csv = to_csv(&series).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            vec![
                "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users,errors_503,errors_timeout",
                "0,10,10,20,40,2,5,2,0",
                "1,12,11,21,41,2,6,1,1",
                "2,9,12,22,42,0,6,0,0",
            ]
        );
        assert!(csv.ends_with('\n'));
    }

    #[test]
    fn csv_of_no_seconds_is_just_the_header() {
        assert_eq!(
            to_csv(&[]).unwrap(),
            "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users\n"
        );
    }

    #[test]
    fn csv_quotes_error_keys_with_commas_quotes_and_newlines() {
        let s = second(3, 1, &[("a,\"b\"", 4), ("line\nbreak", 1)], 1);
        let csv = to_csv(&[s]).unwrap();
        assert!(csv.starts_with(
            "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users,\"errors_a,\"\"b\"\"\",\"errors_line\nbreak\"\n"
        ));
        // And a CSV reader gets the same fields back.
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[7], "errors_a,\"b\"");
        assert_eq!(header[8], "errors_line\nbreak");
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(row.len(), 9);
        assert_eq!((&row[5], &row[7], &row[8]), ("5", "4", "1"));
    }

    #[test]
    fn csv_leaves_non_finite_latencies_empty_and_keeps_fractions() {
        let mut s = second(3, 1, &[], 1);
        s.p50_ms = 1.5;
        s.p95_ms = f64::NAN;
        s.p99_ms = f64::NEG_INFINITY;
        assert_eq!(to_csv(&[s]).unwrap().lines().nth(1), Some("3,1,1.5,,,0,1"));
    }

    #[test]
    fn csv_writes_huge_counts_exactly_and_totals_without_overflow() {
        let s = Second {
            requests: u64::MAX,
            errors: [("500".to_string(), u64::MAX), ("503".to_string(), 1)].into(),
            ..Second::default()
        };
        let csv = to_csv(&[s]).unwrap();
        let max = u64::MAX.to_string();
        assert_eq!(
            csv.lines().nth(1),
            Some(format!("0,{max},0,0,0,{max},0,{max},1").as_str())
        );
    }
}
