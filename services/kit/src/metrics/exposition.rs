//! Reading Prometheus text back: the samples of a scrape, for tests that assert what a running
//! service exports (and for comparing a dashboard's queries with what is exported).

use std::collections::BTreeSet;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The samples of one scrape.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses Prometheus text (0.0.4); lines it cannot read are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels`;
    /// `None` when no sample matches.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matched = self.matching(name, labels).peekable();
        matched.peek()?;
        Some(matched.map(|sample| sample.value).sum())
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
    }

    /// Every sample name, histogram series included (`_bucket`, `_sum`, `_count`).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }
}

/// `GET http://{addr}/metrics` (5 s deadline), parsed; an answer other than 200 is an error.
#[cfg(feature = "http-client")]
pub async fn scrape(addr: std::net::SocketAddr) -> Result<Exposition, crate::http_client::Error> {
    let reply = crate::http_client::HttpClient::for_addr(addr)
        .get("/metrics")
        .deadline(std::time::Duration::from_secs(5))
        .send()
        .await?;
    if reply.status != 200 {
        return Err(crate::http_client::Error::Transport(format!(
            "GET /metrics answered {}",
            reply.status
        )));
    }
    Ok(Exposition::parse(&reply.text()))
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => return None,
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels_are_read_and_summed_by_label_subset() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\n\
                    x_total{method=\"A/B\",code=\"OK\"} 3\n\
                    x_total{method=\"A/B\",code=\"NOT_FOUND\"} 1\n\
                    y 2.5\n\
                    z_bucket{le=\"+Inf\",q=\"a \\\"quoted\\\" b\"} 7\n";
        let exposition = Exposition::parse(text);
        assert_eq!(exposition.sum("x_total", &[("method", "A/B")]), Some(4.0));
        assert_eq!(exposition.sum("x_total", &[("code", "OK")]), Some(3.0));
        assert_eq!(exposition.sum("x_total", &[("code", "INTERNAL")]), None);
        assert_eq!(exposition.sum("y", &[]), Some(2.5));
        assert_eq!(
            exposition.sum("z_bucket", &[("le", "+Inf"), ("q", "a \"quoted\" b")]),
            Some(7.0)
        );
        assert_eq!(
            exposition.names().into_iter().collect::<Vec<_>>(),
            ["x_total", "y", "z_bucket"]
        );
    }
}
