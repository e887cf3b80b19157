//! The main job: an API behind the whole shield, and twenty seconds of
//! realistic traffic over real HTTP, then what Palisade made of it.
//!
//! ```text
//! cargo run --example demo            # drive traffic, print the tables, exit
//! cargo run --example demo -- --serve # then keep the API and admin router up
//! ```
//!
//! The API is a small shop. Its clients, all on 127.0.0.1:
//! - 60 shoppers with their own JWTs browse, fill a cart and check out;
//! - a scraper walks the product pages far faster than any person;
//! - anonymous visitors read the status page and the catalogue;
//! - one session checks out without ever adding to a cart;
//! - one client sends a token whose signature was tampered with.
//!
//! No identifier is configured: auto-detection chooses `Authorization` from
//! the traffic. Everything is in memory; the demo starts no other process.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::error::Error;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade::learn::{LearnLayer, RateRecommender, RuleAction, SequenceRule, SequenceTracker};
use palisade::{
    AutoDetect, CountBy, EndpointCatalogue, Quota, Rule, Shield, TokenAction, TokenConfig,
    TokenPolicy,
};
use tower::Layer;

/// How long the traffic runs.
const RUN: Duration = Duration::from_secs(20);
const SHOPPERS: usize = 60;
const ANONYMOUS: usize = 5;
const PRODUCTS: u32 = 500;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let serve = std::env::args().any(|arg| arg == "--serve");

    // The shop's identity provider signs HS256 tokens with a secret drawn
    // for this run; the shield gets the same secret as a JWKS.
    let secret: Vec<u8> = (0..6).flat_map(|_| random_u64().to_le_bytes()).collect();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"shop-1","alg":"HS256","k":"{}"}}]}}"#,
        base64url(&secret)
    );
    let issuer = Issuer {
        key: EncodingKey::from_secret(&secret)?,
    };

    let shield = build_shield(&jwks)?;
    let api = serve_api(&shield).await?;
    let admin = match shield.admin_router() {
        Some(router) => Some(serve_router(router).await?),
        None => None,
    };

    println!("Palisade demo: a shop API on http://{api}, {RUN:?} of traffic\n");
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let progress = tokio::spawn(progress_bar(tally.clone(), started));
    drive_traffic(api, &issuer, &tally, started).await;
    progress.await?;

    print_report(&shield, &tally, started);

    if serve {
        println!("\nServing until Ctrl-C:");
        println!("  API    http://{api}/products");
        if let Some(admin) = admin {
            println!("  admin  http://{admin}/endpoints  (also /posture, /openapi.json)");
        }
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// The whole shield, tuned in code.
fn build_shield(jwks: &str) -> Result<Shield, Box<dyn Error>> {
    // Declared endpoints; the rest (`/users/{id}/orders`) is discovered.
    let catalogue = EndpointCatalogue::builder()
        .endpoint("GET", "/products")?
        .endpoint("GET", "/products/{id}")?
        .endpoint("POST", "/cart/items")?
        .endpoint("GET", "/cart")?
        .endpoint("POST", "/checkout")?
        .endpoint("GET", "/status")?
        .build()?;

    let tokens = TokenConfig::builder("shop")
        .title("Shop identity provider")
        .header("authorization")
        .jwks_json(jwks)
        .build()?;

    // Anonymous visitors may browse: a missing token is only logged. A
    // token that fails verification is refused everywhere.
    let policy = TokenPolicy::new("shop")
        .on_missing(TokenAction::Log)
        .on_invalid(TokenAction::Block);

    // No identifier configured: choose one from the traffic, quickly.
    let auto = AutoDetect::builder()
        .min_sample(200)
        .sample_every(NonZeroU32::new(4).expect("4 is not zero"))
        .build()?;

    let per_session = Rule::builder(
        "per-session",
        Quota::new(nz(60), Duration::from_secs(10))?.with_burst(nz(30)),
    )
    .count_by(CountBy::session())
    .build()?;
    let scraping = Rule::builder(
        "product-pages",
        Quota::new(nz(20), Duration::from_secs(10))?.with_burst(nz(10)),
    )
    .endpoint("GET", "/products/{id}")?
    .count_by(CountBy::session())
    .mitigation(Duration::from_secs(5))
    .build()?;

    let checkout =
        SequenceRule::allow("cart-before-checkout", "POST /cart/items", "POST /checkout")?
            .action(RuleAction::Block);

    Ok(Shield::builder()
        .token(tokens)
        .token_policy(policy)
        .auto_detect(auto)
        .endpoints(catalogue)
        .rate_limit(per_session)
        .rate_limit(scraping)
        .learning(LearnLayer::builder().report_after(20))
        .rate_recommender(RateRecommender::new())
        .sequence_tracker(SequenceTracker::new())
        .sequence_rule(checkout)
        .build()?)
}

/// The shop: a router behind the shield, on a free loopback port.
///
/// The shield wraps the router as a whole, so it sees paths rather than
/// axum's matched routes: declared templates resolve through the catalogue
/// and the others are discovered.
async fn serve_api(shield: &Shield) -> Result<SocketAddr, Box<dyn Error>> {
    let shop = Router::new()
        .route("/products", get(|| async { "[…500 products…]" }))
        .route(
            "/products/{id}",
            get(|Path(id): Path<u32>| async move { format!("product {id}") }),
        )
        .route("/cart/items", post(|| async { StatusCode::CREATED }))
        .route("/cart", get(|| async { "cart" }))
        .route("/checkout", post(|| async { "order placed" }))
        .route(
            "/users/{id}/orders",
            get(|Path(id): Path<u32>| async move { format!("orders of {id}") }),
        )
        .route("/status", get(|| async { "ok" }));
    let app = Router::new().fallback_service(shield.layer(shop));
    serve_router(app).await
}

async fn serve_router(router: Router) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

/// Signs the shop's tokens.
struct Issuer {
    key: EncodingKey,
}

impl Issuer {
    fn token(&self, sub: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + 3600 });
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("shop-1".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("HS256 signing cannot fail")
    }
}

/// What the clients saw: every status, and every refusal with its reason.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    ok: AtomicU64,
    by_status: Mutex<HashMap<u16, u64>>,
    refusals: Mutex<HashMap<(u16, String, String), u64>>,
}

impl Tally {
    fn count(&self, status: StatusCode, endpoint: &str, body: &[u8]) {
        self.requests.fetch_add(1, Relaxed);
        if status.is_success() {
            self.ok.fetch_add(1, Relaxed);
        }
        *lock(&self.by_status).entry(status.as_u16()).or_default() += 1;
        if status.is_client_error() {
            // Palisade's refusals are problem documents; say what refused.
            let problem: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let title = problem["title"].as_str().unwrap_or("-");
            let why = match problem.get("rule").and_then(|r| r.as_str()) {
                Some(rule) => format!("{title} (rule {rule})"),
                None => title.to_owned(),
            };
            let key = (status.as_u16(), endpoint.to_owned(), why);
            *lock(&self.refusals).entry(key).or_default() += 1;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client: its token, its own headers, and a shared connection pool.
#[derive(Clone)]
struct Visitor {
    api: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    token: Option<String>,
    extra: Vec<(&'static str, String)>,
    tally: Arc<Tally>,
}

impl Visitor {
    async fn call(&self, method: Method, path: &str, label: &str) -> StatusCode {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.api));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in &self.extra {
            request = request.header(*name, value);
        }
        let Ok(request) = request.body(Empty::new()) else {
            return StatusCode::BAD_REQUEST;
        };
        let Ok(response) = self.client.request(request).await else {
            return StatusCode::SERVICE_UNAVAILABLE;
        };
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        self.tally.count(status, label, &body.unwrap_or_default());
        status
    }
}

async fn drive_traffic(api: SocketAddr, issuer: &Issuer, tally: &Arc<Tally>, started: Instant) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let visitor = |token: Option<String>, extra: Vec<(&'static str, String)>| Visitor {
        api,
        client: client.clone(),
        token,
        extra,
        tally: tally.clone(),
    };
    let deadline = started + RUN;
    let mut tasks = Vec::new();

    for i in 0..SHOPPERS {
        let shopper = visitor(
            Some(issuer.token(&format!("user-{i}"))),
            vec![
                ("x-device-id", format!("device-{i:04}")),
                ("cookie", format!("theme=dark; cart=c{i:04}")),
            ],
        );
        tasks.push(tokio::spawn(shop(shopper, i as u32, deadline)));
    }
    tasks.push(tokio::spawn(scrape(
        visitor(Some(issuer.token("scraper")), Vec::new()),
        deadline,
    )));
    for _ in 0..ANONYMOUS {
        tasks.push(tokio::spawn(browse(visitor(None, Vec::new()), deadline)));
    }
    tasks.push(tokio::spawn(skip_cart(
        visitor(Some(issuer.token("skipper")), Vec::new()),
        deadline,
    )));
    let mut forged = issuer.token("mallory");
    forged.push_str(if forged.ends_with('A') { "B" } else { "A" });
    tasks.push(tokio::spawn(forge(
        visitor(Some(forged), Vec::new()),
        deadline,
    )));

    for task in tasks {
        let _ = task.await;
    }
}

/// A shopper: browse, look at a few products, read past orders, fill the
/// cart, check out, at a person's pace.
async fn shop(v: Visitor, user: u32, deadline: Instant) {
    let mut rng = Rng::new();
    while Instant::now() < deadline {
        v.call(Method::GET, "/products", "GET /products").await;
        pause(&mut rng, 150, 450).await;
        for _ in 0..1 + rng.below(3) {
            let path = format!("/products/{}", rng.below(PRODUCTS));
            v.call(Method::GET, &path, "GET /products/{id}").await;
            pause(&mut rng, 150, 450).await;
        }
        if rng.below(3) == 0 {
            let path = format!("/users/{user}/orders");
            v.call(Method::GET, &path, "GET /users/{id}/orders").await;
            pause(&mut rng, 150, 450).await;
        }
        v.call(Method::POST, "/cart/items", "POST /cart/items")
            .await;
        pause(&mut rng, 150, 450).await;
        v.call(Method::GET, "/cart", "GET /cart").await;
        pause(&mut rng, 150, 450).await;
        v.call(Method::POST, "/checkout", "POST /checkout").await;
        pause(&mut rng, 300, 900).await;
    }
}

/// A scraper: every product page, as fast as the answers come.
async fn scrape(v: Visitor, deadline: Instant) {
    let mut id = 0;
    while Instant::now() < deadline {
        let path = format!("/products/{}", id % PRODUCTS);
        v.call(Method::GET, &path, "GET /products/{id}").await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An anonymous visitor: the status page and the catalogue, no token.
async fn browse(v: Visitor, deadline: Instant) {
    let mut rng = Rng::new();
    while Instant::now() < deadline {
        v.call(Method::GET, "/status", "GET /status").await;
        pause(&mut rng, 200, 600).await;
        v.call(Method::GET, "/products", "GET /products").await;
        pause(&mut rng, 200, 600).await;
    }
}

/// A session that checks out without ever adding to its cart.
async fn skip_cart(v: Visitor, deadline: Instant) {
    let mut rng = Rng::new();
    while Instant::now() < deadline {
        v.call(Method::GET, "/products", "GET /products").await;
        pause(&mut rng, 300, 700).await;
        v.call(Method::POST, "/checkout", "POST /checkout").await;
        pause(&mut rng, 300, 700).await;
    }
}

/// A client whose token's signature was tampered with.
async fn forge(v: Visitor, deadline: Instant) {
    let mut rng = Rng::new();
    while Instant::now() < deadline {
        v.call(Method::GET, "/cart", "GET /cart").await;
        pause(&mut rng, 400, 800).await;
    }
}

async fn pause(rng: &mut Rng, min_ms: u32, max_ms: u32) {
    let ms = min_ms + rng.below(max_ms - min_ms);
    tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
}

/// Redraws one status line until the run is over.
async fn progress_bar(tally: Arc<Tally>, started: Instant) {
    const WIDTH: usize = 30;
    loop {
        let elapsed = started.elapsed().min(RUN);
        let done = (elapsed.as_secs_f64() / RUN.as_secs_f64() * WIDTH as f64) as usize;
        let statuses = lock(&tally.by_status).clone();
        let refused: u64 = statuses
            .iter()
            .filter(|(s, _)| **s >= 400)
            .map(|(_, n)| n)
            .sum();
        eprint!(
            "\r  [{}{}] {:>4.1} s  {:>6} requests  {:>6} ok  {:>5} refused ",
            "#".repeat(done),
            "-".repeat(WIDTH - done),
            elapsed.as_secs_f64(),
            tally.requests.load(Relaxed),
            tally.ok.load(Relaxed),
            refused,
        );
        let _ = std::io::stderr().flush();
        if elapsed >= RUN {
            eprintln!();
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn print_report(shield: &Shield, tally: &Tally, started: Instant) {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(started.elapsed())
        .as_secs();

    // 1. The session identifier chosen by auto-detection, and candidates.
    if let Some(auto) = shield.auto_detect() {
        let report = auto.report();
        match &report.chosen {
            Some(chosen) => println!(
                "\nSession identifier: {} chosen {} s into the run ({} of {} 2xx responses \
                 carried it, {:.1}%)",
                chosen.identifier,
                chosen.at_unix_secs.saturating_sub(started_unix),
                chosen.with_authorization,
                chosen.total,
                chosen.share * 100.0
            ),
            None => println!("\nSession identifier: none chosen yet"),
        }
        let rows = report
            .candidates
            .iter()
            .map(|c| {
                vec![
                    c.identifier.clone(),
                    format!("{:.0}%", c.presence * 100.0),
                    format!("{:.0}", c.distinct_values),
                    format!("{:.1}", c.requests_per_value),
                    format!("{:.2}", c.score),
                ]
            })
            .collect();
        table(
            "Other candidates (suggestions, never applied)",
            &["identifier", "present", "distinct", "req/value", "score"],
            rows,
        );
    }

    if let Some(learned) = shield.learned() {
        // 2. Discovered endpoints.
        let mut endpoints = learned.endpoints();
        endpoints.sort_by_key(|e| std::cmp::Reverse(e.requests));
        let rows = endpoints
            .iter()
            .map(|e| {
                vec![
                    e.name(),
                    format!("{:?}", e.origin).to_lowercase(),
                    e.requests.to_string(),
                    e.status.success.to_string(),
                    e.status.client_error.to_string(),
                    e.sessions.to_string(),
                ]
            })
            .collect();
        table(
            "Endpoints discovered",
            &["endpoint", "origin", "requests", "2xx", "4xx", "sessions"],
            rows,
        );

        // 3. Authentication posture.
        let rows = learned
            .posture()
            .iter()
            .map(|p| {
                vec![
                    format!("{} {}", p.method, p.template),
                    p.with_session.to_string(),
                    p.without_session.to_string(),
                    format!("{:?}", p.posture).to_lowercase(),
                ]
            })
            .collect();
        table(
            "Authentication posture (2xx responses)",
            &["endpoint", "with session", "without", "posture"],
            rows,
        );
    }

    // 4. Rate recommendations.
    if let Some(rates) = shield.rate_recommender() {
        let rows = rates
            .recommendations()
            .iter()
            .map(|r| {
                vec![
                    r.endpoint.to_string(),
                    r.sessions.to_string(),
                    format!("{:.0}", r.p50),
                    format!("{:.0}", r.p90),
                    format!("{:.0}", r.p99),
                    format!("{} / {} min", r.limit, r.window.as_secs() / 60),
                    format!("{:?}", r.confidence).to_lowercase(),
                ]
            })
            .collect();
        table(
            "Rate recommendations (peak requests per session in 10 minutes)",
            &[
                "endpoint",
                "sessions",
                "p50",
                "p90",
                "p99",
                "suggested",
                "confidence",
            ],
            rows,
        );
    }

    // 5. Top sequences.
    if let Some(tracker) = shield.sequence_tracker() {
        let report = tracker.report();
        let pattern_rows = |patterns: Vec<palisade::learn::Pattern>| {
            patterns
                .iter()
                .map(|p| {
                    let path: Vec<String> = p.endpoints.iter().map(ToString::to_string).collect();
                    vec![
                        path.join(" -> "),
                        p.count.to_string(),
                        format!("{:.2}", p.score),
                    ]
                })
                .collect()
        };
        table(
            "Top sequences by volume",
            &["sequence", "count", "precedence"],
            pattern_rows(report.top_by_volume(5)),
        );
        table(
            "Top sequences by precedence score",
            &["sequence", "count", "precedence"],
            pattern_rows(report.top_by_score(5)),
        );
    }

    // 6. What was limited or blocked, and why, as the clients saw it.
    let mut refusals: Vec<_> = lock(&tally.refusals).clone().into_iter().collect();
    refusals.sort_by_key(|r| std::cmp::Reverse(r.1));
    let rows = refusals
        .into_iter()
        .map(|((status, endpoint, why), n)| vec![status.to_string(), endpoint, why, n.to_string()])
        .collect();
    table(
        "Limited or blocked",
        &["status", "endpoint", "why", "requests"],
        rows,
    );
    println!(
        "\n{} requests in {:.1} s, {} answered 2xx.",
        tally.requests.load(Relaxed),
        started.elapsed().as_secs_f64(),
        tally.ok.load(Relaxed)
    );
}

/// Prints a titled table with columns sized to their contents.
fn table(title: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    println!("\n{title}");
    if rows.is_empty() {
        println!("  (none)");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row);
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a positive constant")
}

/// A small xorshift generator for the clients' pacing, seeded at random.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(random_u64() | 1)
    }

    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n.max(1))) as u32
    }
}

fn random_u64() -> u64 {
    // std's hasher keys are drawn from the operating system's random source.
    RandomState::new().build_hasher().finish()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
