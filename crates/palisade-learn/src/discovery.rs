//! Endpoint discovery: the reports, marks and the catalogue of saved
//! endpoints.

use std::sync::atomic::Ordering;

use http::Method;
use palisade_core::{ConfigError, EndpointCatalogue};
use serde::{Deserialize, Serialize};

use crate::collector::{Collector, Mark, Origin};
use crate::state::LearnedState;

/// Responses by status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    /// 1xx responses.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// 2xx responses.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// 3xx responses.
    #[serde(rename = "3xx")]
    pub redirection: u64,
    /// 4xx responses.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// 5xx responses.
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl StatusClasses {
    pub(crate) fn of(collector: &Collector) -> Self {
        let [a, b, c, d, e] = collector
            .status
            .each_ref()
            .map(|s| s.load(Ordering::Relaxed));
        Self {
            informational: a,
            success: b,
            redirection: c,
            client_error: d,
            server_error: e,
        }
    }

    /// Every response counted.
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }
}

/// What was learned about one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointReport {
    /// The HTTP method.
    pub method: String,
    /// The host, or `*` for any host.
    pub host: String,
    /// The path template, such as `/users/{var1}`.
    pub template: String,
    /// The names of the template's path parameters, left to right.
    pub parameters: Vec<String>,
    /// Where the template came from.
    pub origin: Origin,
    /// What the user decided about it.
    pub mark: Mark,
    /// Every response counted, of any status.
    pub requests: u64,
    /// Responses by status class.
    pub status: StatusClasses,
    /// Distinct sessions seen on 2xx responses, estimated (about 3% error).
    pub sessions: u64,
    /// First 2xx response, in seconds since the Unix epoch.
    pub first_seen: u64,
    /// Last 2xx response, in seconds since the Unix epoch.
    pub last_seen: u64,
    /// 2xx responses per hour, averaged from first to last sighting (over
    /// one hour at least).
    pub requests_per_hour: f64,
}

impl EndpointReport {
    pub(crate) fn of(collector: &Collector) -> Self {
        let status = StatusClasses::of(collector);
        let first = collector.first_seen.load(Ordering::Relaxed);
        let last = collector.last_seen.load(Ordering::Relaxed);
        let (first, last) = if first > last { (0, 0) } else { (first, last) };
        let hours = ((last - first) as f64 / 3_600.0).max(1.0);
        Self {
            method: collector.method.to_string(),
            host: collector.host.to_string(),
            template: collector.template.to_string(),
            parameters: parameters(&collector.template),
            origin: collector.origin,
            mark: collector.mark(),
            requests: status.total(),
            status,
            sessions: collector.sessions.estimate(),
            first_seen: first,
            last_seen: last,
            requests_per_hour: status.success as f64 / hours,
        }
    }

    /// `GET /users/{var1}`, with the host when there is one.
    pub fn name(&self) -> String {
        match self.host.as_str() {
            "*" => format!("{} {}", self.method, self.template),
            host => format!("{} {}{}", self.method, host, self.template),
        }
    }
}

/// The parameter names of a template: `{id}` and `{*rest}` give `id` and
/// `rest`.
pub(crate) fn parameters(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|s| s.trim_start_matches('*').to_owned())
        .collect()
}

impl LearnedState {
    /// The endpoints reported so far, not ignored, sorted by template and
    /// method: those with at least the reporting threshold of 2xx
    /// responses, and every saved one.
    pub fn endpoints(&self) -> Vec<EndpointReport> {
        self.reports(|mark| mark != Mark::Ignored)
    }

    /// The endpoints marked ignored.
    pub fn ignored(&self) -> Vec<EndpointReport> {
        self.reports(|mark| mark == Mark::Ignored)
    }

    pub(crate) fn reported(&self) -> Vec<std::sync::Arc<Collector>> {
        self.maintain();
        let threshold = self.inner.config.report_after;
        let mut reported: Vec<_> = self
            .inner
            .all()
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| c.successful() >= threshold || c.mark() == Mark::Saved)
            .collect();
        reported.sort_by(|a, b| {
            (&a.template, a.method.as_str(), &a.host).cmp(&(
                &b.template,
                b.method.as_str(),
                &b.host,
            ))
        });
        reported
    }

    fn reports(&self, keep: impl Fn(Mark) -> bool) -> Vec<EndpointReport> {
        self.reported()
            .iter()
            .filter(|c| keep(c.mark()))
            .map(|c| EndpointReport::of(c))
            .collect()
    }

    /// Marks the endpoint `method host template` (host `*` for any host) as
    /// saved, ignored, or neither; whether it was found.
    ///
    /// Only tracked endpoints can be marked; a saved endpoint is never aged
    /// out and joins [`catalogue`](Self::catalogue).
    pub fn mark(&self, method: &str, host: &str, template: &str, mark: Mark) -> bool {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return false;
        };
        let found = self.inner.all().into_iter().find(|(_, c)| {
            c.method == method && c.host.eq_ignore_ascii_case(host) && &*c.template == template
        });
        match found {
            Some((_, c)) => {
                c.set_mark(mark);
                true
            }
            None => false,
        }
    }

    /// The declared endpoints and the saved discovered ones, as a catalogue
    /// to build other layers with (rate limit rules, say) or to declare at
    /// the next start.
    pub fn catalogue(&self) -> Result<EndpointCatalogue, ConfigError> {
        let mut builder = EndpointCatalogue::builder();
        for endpoint in self.inner.catalogue.endpoints() {
            builder = builder.with(*endpoint);
        }
        let mut saved: Vec<_> = self
            .inner
            .all()
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| c.mark() == Mark::Saved && c.origin == Origin::Discovered)
            .collect();
        saved.sort_by(|a, b| a.template.cmp(&b.template));
        for c in saved {
            let endpoint = *c
                .endpoint
                .get_or_init(|| crate::future::discovered_endpoint(&c));
            builder = builder.with(endpoint);
        }
        builder.build()
    }

    /// Runs maintenance now: ages out candidates past their time to live
    /// and turns crowded path segments into placeholders. Reads run it
    /// first; a service that rarely reads may call it periodically.
    pub fn maintain(&self) {
        self.inner.maintain();
    }

    /// How many endpoints are tracked, reported or not.
    pub fn tracked(&self) -> usize {
        self.inner.len()
    }

    /// How many 2xx responses to new templates were not learned because the
    /// table was full.
    pub fn refused(&self) -> u64 {
        self.inner.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::parameters;

    #[test]
    fn parameters_are_read_from_templates() {
        assert_eq!(parameters("/users/{var1}/orders/{var2}"), ["var1", "var2"]);
        assert_eq!(parameters("/files/{*rest}"), ["rest"]);
        assert!(parameters("/").is_empty());
    }
}
