//! Remote JWKS against a local HTTP server: the first fetch, a refresh on
//! an unknown kid, the cooldown, and a custom fetcher.

#![cfg(feature = "remote-jwks")]

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use palisade_core::ManualClock;
use palisade_jwt::remote::{FetchError, FetchFuture, JwksFetcher, RemoteJwks};
use palisade_jwt::{JwtLayer, RejectionKind, TokenConfig};
use support::{NOW, TestKey, claims, jwks, key, sign};

/// A JWKS server whose document the test changes; counts requests.
#[derive(Clone, Default)]
struct Server {
    document: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn publish(&self, keys: &[&TestKey]) {
        *self.document.lock().unwrap() = serde_json::to_string(&jwks(keys)).unwrap();
    }

    async fn start(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = self.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req: Request<Incoming>| {
                        server.hits.fetch_add(1, Ordering::SeqCst);
                        let body = server.document.lock().unwrap().clone();
                        let response = Response::new(Full::new(Bytes::from(body)));
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }
}

fn check(layer: &JwtLayer, token: &str) -> Result<(), RejectionKind> {
    let mut request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let claims = layer.check(&mut request).map_err(|r| r.kind())?;
    if claims.get("idp").is_some() {
        Ok(())
    } else {
        Err(RejectionKind::Missing)
    }
}

/// Waits for the `n`th key set; the bound only stops a broken build from
/// hanging the suite.
async fn landed(status: &palisade_jwt::remote::RemoteStatus, n: u64) {
    tokio::time::timeout(Duration::from_secs(30), status.loaded(n))
        .await
        .unwrap_or_else(|_| panic!("key set {n} never landed: {status:?}"));
}

fn layer(config: TokenConfig, clock: &ManualClock) -> JwtLayer {
    let policy = palisade_jwt::TokenPolicy::new("idp").on_invalid(palisade_jwt::TokenAction::Block);
    JwtLayer::builder()
        .token(config)
        .policy(policy)
        .clock(clock.shared())
        .build()
        .unwrap()
}

#[tokio::test]
async fn unknown_kid_refreshes_once_per_cooldown_without_waiting() {
    let server = Server::default();
    let k1 = key(Algorithm::RS256, "k1");
    let k2 = key(Algorithm::ES256, "k2");
    let k3 = key(Algorithm::EdDSA, "k3");
    server.publish(&[&k1]);
    let addr = server.start().await;
    let clock = ManualClock::new(Duration::from_secs(NOW));

    let remote = RemoteJwks::new(&format!("http://{addr}/.well-known/jwks.json"))
        .unwrap()
        .refresh_interval(Duration::from_secs(3600))
        .unwrap()
        .clock(clock.shared());
    let config = TokenConfig::builder("idp")
        .header("authorization")
        .remote_jwks(remote)
        .build()
        .unwrap();
    let status = config.remote_status().unwrap().clone();
    let layer = layer(config, &clock);
    landed(&status, 1).await;
    assert_eq!(layer.keys("idp").unwrap().kids(), ["k1"]);
    assert!(check(&layer, &sign(&k1, &claims("a"))).is_ok());

    // Right after a fetch, an unknown kid does not fetch again.
    let by_k2 = sign(&k2, &claims("b"));
    assert_eq!(check(&layer, &by_k2), Err(RejectionKind::UnknownKey));
    assert!(!status.request_refresh());
    assert_eq!(status.attempts(), 1);

    // The provider adds k2; past the cooldown, a token signed with it is
    // refused at once (the request does not wait) and asks for a refresh,
    // which brings the key.
    server.publish(&[&k1, &k2]);
    clock.advance(Duration::from_secs(30));
    assert_eq!(check(&layer, &by_k2), Err(RejectionKind::UnknownKey));
    landed(&status, 2).await;
    assert_eq!(status.attempts(), 2);
    assert!(
        check(&layer, &by_k2).is_ok(),
        "new keys void cached refusals"
    );

    // Within the cooldown, another unknown kid does not fetch again.
    server.publish(&[&k1, &k2, &k3]);
    let by_k3 = sign(&k3, &claims("c"));
    assert_eq!(check(&layer, &by_k3), Err(RejectionKind::UnknownKey));
    clock.advance(Duration::from_secs(29));
    assert!(!status.request_refresh());
    assert_eq!(status.attempts(), 2);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // After it, the next unknown kid does.
    clock.advance(Duration::from_secs(2));
    assert_eq!(check(&layer, &by_k3), Err(RejectionKind::UnknownKey));
    landed(&status, 3).await;
    assert!(check(&layer, &by_k3).is_ok());
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

/// A fetcher that serves a fixed document, as an https client would.
#[derive(Debug)]
struct Fixed(String);

impl JwksFetcher for Fixed {
    fn fetch<'a>(&'a self, url: &'a Uri) -> FetchFuture<'a> {
        Box::pin(async move {
            if url.scheme_str() == Some("https") {
                Ok(Bytes::from(self.0.clone()))
            } else {
                Err(FetchError::new("https only"))
            }
        })
    }
}

#[tokio::test]
async fn custom_fetcher_serves_https_urls_and_weak_keys_are_skipped() {
    let good = key(Algorithm::HS512, "good");
    let weak = support::weak_rsa("weak");
    let document = serde_json::to_string(&jwks(&[&weak, &good])).unwrap();
    let clock = ManualClock::new(Duration::from_secs(NOW));
    let config = TokenConfig::builder("idp")
        .header("authorization")
        .remote_jwks(
            RemoteJwks::new("https://id.example/jwks.json")
                .unwrap()
                .fetcher(Fixed(document)),
        )
        .build()
        .unwrap();
    let status = config.remote_status().unwrap().clone();
    let layer = layer(config, &clock);
    landed(&status, 1).await;
    assert_eq!(layer.keys("idp").unwrap().kids(), ["good"]);
    assert!(check(&layer, &sign(&good, &claims("a"))).is_ok());
}

#[test]
fn remote_keys_need_a_runtime() {
    let err = TokenConfig::builder("idp")
        .header("authorization")
        .remote_jwks(RemoteJwks::new("http://127.0.0.1:9/jwks").unwrap())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
