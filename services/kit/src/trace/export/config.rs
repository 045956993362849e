//! The export's configuration, from the standard `OTEL_*` variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` | the collector (`http://host:4317`); unset: no spans | — |
//! | `OTEL_TRACES_EXPORTER` | `otlp`, or `none` for no spans | `otlp` |
//! | `OTEL_SDK_DISABLED` | `true`: no spans | `false` |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` | ms per export call | 10000 |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` | `key=value,…` sent with each export | — |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource | the service's name |
//! | `OTEL_BSP_SCHEDULE_DELAY` | ms between exports | 5000 |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | spans held before new ones are dropped | 2048 |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans per export call (a full batch is sent at once) | 512 |
//! | `OTEL_TRACES_SAMPLER`, `_ARG` | the sampling rule ([`Rule`]) | parent-based, 1.0 |

use std::time::Duration;

use super::super::rule::Rule;

/// Where and how spans are exported.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The collector's OTLP/gRPC endpoint (`http://host:port`).
    pub endpoint: String,
    /// Per export call.
    pub timeout: Duration,
    /// Metadata sent with each export call.
    pub headers: Vec<(String, String)>,
    /// The resource: `service.name`, `service.instance.id` and `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
    pub schedule_delay: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
    pub rule: Rule,
}

impl ExportConfig {
    /// For `service` at `endpoint`, with the specification's defaults otherwise.
    pub fn new(service: &str, endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            resource: vec![
                ("service.name".into(), service.to_owned()),
                ("service.instance.id".into(), instance_id(service)),
            ],
            schedule_delay: Duration::from_millis(5000),
            max_queue: 2048,
            max_batch: 512,
            rule: Rule::parse(None, None),
        }
    }

    /// From the standard variables; `None` when they ask for no spans (no endpoint,
    /// `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`).
    pub fn from_env(service: &str) -> Option<Self> {
        Self::from_vars(service, |name| std::env::var(name).ok())
    }

    fn from_vars(service: &str, var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let either = |specific: &str, general: &str| set(specific).or_else(|| set(general));
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        match set("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return None,
            Some(other) => {
                eprintln!("telemetry: OTEL_TRACES_EXPORTER={other:?} is not supported; no spans");
                return None;
            }
        }
        let endpoint = either(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        )?;
        if let Some(protocol) = either(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) && protocol.trim() != "grpc"
        {
            eprintln!(
                "telemetry: OTLP protocol {protocol:?} is not supported; exporting over grpc"
            );
        }
        let millis = |name: &str| {
            set(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        let count = |name: &str| {
            set(name)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
        };
        let mut config = Self::new(
            set("OTEL_SERVICE_NAME").as_deref().unwrap_or(service),
            endpoint.trim(),
        );
        if let Some(timeout) = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| millis("OTEL_EXPORTER_OTLP_TIMEOUT"))
        {
            config.timeout = timeout;
        }
        config.headers = either(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        )
        .map(|list| pairs(&list))
        .unwrap_or_default();
        // The service's own name and instance win over the same keys in the list.
        let listed = set("OTEL_RESOURCE_ATTRIBUTES")
            .map(|list| pairs(&list))
            .unwrap_or_default();
        config.resource.extend(
            listed
                .into_iter()
                .filter(|(key, _)| key != "service.name" && key != "service.instance.id"),
        );
        if let Some(delay) = millis("OTEL_BSP_SCHEDULE_DELAY") {
            config.schedule_delay = delay.max(Duration::from_millis(1));
        }
        if let Some(size) = count("OTEL_BSP_MAX_QUEUE_SIZE") {
            config.max_queue = size;
        }
        if let Some(size) = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            config.max_batch = size.min(config.max_queue);
        }
        config.rule = Rule::parse(
            set("OTEL_TRACES_SAMPLER").as_deref(),
            set("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        );
        Some(config)
    }
}

/// `key=value,key2=value2` with percent-encoded values (W3C Baggage's format, as the
/// specification gives it for headers and resource attributes); malformed entries skipped.
fn pairs(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), percent_decoded(value.trim())))
        })
        .collect()
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// This process among its replicas: the host (a pod's name in Kubernetes) and the process id.
fn instance_id(service: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| service.to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Option<ExportConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ExportConfig::from_vars("queue", |name| vars.get(name).cloned())
    }

    #[test]
    fn no_endpoint_none_or_disabled_means_no_spans() {
        assert!(config(&[]).is_none());
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(config(&[endpoint]).is_some());
        assert!(config(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).is_none());
        assert!(config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).is_none());
        assert!(config(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).is_none());
    }

    #[test]
    fn the_standard_variables_configure_the_export() {
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, tenant = acme,broken",
            ),
            ("OTEL_SERVICE_NAME", "queue-eu"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=ignored",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "500"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "262144"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ])
        .expect("exported");
        assert_eq!(config.endpoint, "http://traces:4317");
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(
            config.headers,
            vec![
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("tenant".to_owned(), "acme".to_owned())
            ]
        );
        assert_eq!(
            config.resource[0],
            ("service.name".into(), "queue-eu".into())
        );
        assert_eq!(config.resource[1].0, "service.instance.id");
        assert_eq!(
            &config.resource[2..],
            &[("deployment.environment".to_owned(), "prod".to_owned())]
        );
        assert_eq!(config.schedule_delay, Duration::from_millis(500));
        assert_eq!((config.max_queue, config.max_batch), (262_144, 4096));
        assert_eq!(
            config.rule,
            Rule::parse(Some("parentbased_traceidratio"), Some("0.01"))
        );
    }
}
