//! Turning a rate recommendation into a rate limit rule.

use std::num::NonZeroU32;

use palisade_core::ConfigError;
use palisade_learn::{Recommendation, SuggestedAction};
use palisade_limit::{Action, CountBy, Quota, Rule};

/// The rate limit rule a [`Recommendation`] suggests: on its endpoint,
/// counted by session, `limit` requests per 10 minutes with its `burst`,
/// and its action (`log` unless changed), so it can be watched on live
/// traffic before it blocks.
///
/// The rule is named `recommended METHOD /template` (made printable and cut
/// to 64 characters, as rule names must be). Rules replenish continuously
/// (GCRA): a session may make `burst` requests at once, the recommendation's
/// busiest minute with headroom, and `limit` per 10 minutes sustained.
///
/// ```
/// use palisade::learn::{Observation, Recorder};
/// use palisade::{Endpoint, RateRecommender, SessionId, rule_from};
/// use std::time::Duration;
///
/// let rates = RateRecommender::new();
/// let orders = Endpoint::new(http::Method::POST, palisade::core::HostPattern::Any, "/orders");
/// let now = palisade::SystemClock::shared().now();
/// for session in 1..=60u128 {
///     for _ in 0..4 {
///         rates.record(&Observation {
///             endpoint: orders,
///             session: Some(SessionId::from_u128(session)),
///             status: http::StatusCode::OK,
///             at: now,
///         });
///     }
/// }
/// let rule = rule_from(&rates.recommendation(orders).unwrap())?;
/// assert_eq!(rule.name(), "recommended POST /orders");
/// assert_eq!(rule.quota().requests().get(), 6); // ceil(1.5 × 4)
/// assert_eq!(rule.action(), palisade::Action::Log);
/// # Ok::<(), palisade::ConfigError>(())
/// ```
pub fn rule_from(recommendation: &Recommendation) -> Result<Rule, ConfigError> {
    let endpoint = recommendation.endpoint;
    let positive = |what: &'static str, n: u32| {
        NonZeroU32::new(n).ok_or(ConfigError::OutOfRange {
            what,
            value: n.to_string(),
        })
    };
    let quota = Quota::new(
        positive("recommended limit", recommendation.limit)?,
        recommendation.window,
    )?
    .with_burst(positive("recommended burst", recommendation.burst)?);

    let name: String = format!("recommended {endpoint}")
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .take(64)
        .collect();
    let action = match recommendation.action {
        SuggestedAction::Log => Action::Log,
        SuggestedAction::Block => Action::Block,
    };
    Rule::builder(&name, quota)
        .endpoint_on(
            endpoint.method().as_str(),
            &endpoint.host().to_string(),
            endpoint.template(),
        )?
        .count_by(CountBy::session())
        .action(action)
        .build()
}
