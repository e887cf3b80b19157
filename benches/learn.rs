//! Per-request cost of the learning layer over the bare router.
//!
//! Each case sends requests through an axum `Router` in process (no socket):
//! `GET /users/{id}/orders/{order}` with ids drawn from 10,000 values, each
//! request carrying one of 10,000 sessions in its extensions as the session
//! layer would leave it, and answered 200. The baseline is the same router
//! without the layer, measured in the same run: the cost of the layer is the
//! difference of the medians. The layer wraps the router as a whole, so the
//! template is found by normalising the path (`discovered`) or from a
//! declared catalogue (`declared`). The endpoint is tracked before timing
//! starts: this is the common case of a known endpoint.
//!
//! The machine is shared and its load moves between cases, so the
//! `overhead` cases run batches through the layered and the bare router
//! one after the other and report the per-request difference of the two
//! (1 ns per sample if negative). The `noop` cases put the layer over a service that
//! answers at once, to show the layer's cost without the router's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use palisade::{EndpointCatalogue, LearnLayer, Session, SessionId, SessionSource};
use tower::{Layer, Service};

const VALUES: usize = 10_000;

fn router() -> Router {
    Router::new().route("/users/{id}/orders/{order}", get(|| async { "ok" }))
}

fn request(i: usize) -> Request<Body> {
    let mut request = Request::get(format!("/users/{}/orders/{}", i * 7 + 1, i))
        .body(Body::empty())
        .unwrap();
    let session = Session::identified(
        SessionId::from_u128((i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
        SessionSource::header("authorization"),
    );
    request.extensions_mut().insert(session);
    request
}

fn run<S>(c: &mut Criterion, name: &str, mut svc: S)
where
    S: Service<Request<Body>> + Send,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                // Requests are built in chunks outside the timed region, so
                // only the service call and the response drop are timed.
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(1_000);
                    let batch: Vec<_> = (done..done + n).map(|i| request(i % VALUES)).collect();
                    let start = Instant::now();
                    for request in batch {
                        black_box(svc.call(request).await.unwrap());
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            })
        })
    });
}

/// Alternates batches through `layered` and `bare`; the difference.
fn run_overhead<S, B>(c: &mut Criterion, name: &str, mut layered: S, mut bare: B)
where
    S: Service<Request<Body>> + Send,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Service<Request<Body>> + Send,
    B::Future: Send,
    B::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut layered_time = Duration::ZERO;
                let mut bare_time = Duration::ZERO;
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(500);
                    let first: Vec<_> = (done..done + n).map(|i| request(i % VALUES)).collect();
                    let second: Vec<_> = (done..done + n).map(|i| request(i % VALUES)).collect();
                    let start = Instant::now();
                    for request in first {
                        black_box(layered.call(request).await.unwrap());
                    }
                    layered_time += start.elapsed();
                    let start = Instant::now();
                    for request in second {
                        black_box(bare.call(request).await.unwrap());
                    }
                    bare_time += start.elapsed();
                    done += n;
                }
                // Criterion refuses a zero sample; a batch where load made
                // the layered run the faster one counts as 1 ns.
                layered_time
                    .saturating_sub(bare_time)
                    .max(Duration::from_nanos(1))
            })
        })
    });
}

fn bench(c: &mut Criterion) {
    let discovered = LearnLayer::builder().build().unwrap();
    let declared = LearnLayer::builder()
        .catalogue(
            EndpointCatalogue::builder()
                .endpoint("GET", "/users/{id}/orders/{order}")
                .unwrap()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();

    run(c, "learn/bare_router", router());
    run(c, "learn/discovered", discovered.layer(router()));
    run(c, "learn/declared", declared.layer(router()));
    run(c, "learn/disabled", LearnLayer::disabled().layer(router()));
    run_overhead(
        c,
        "learn/overhead/discovered",
        discovered.layer(router()),
        router(),
    );
    run_overhead(
        c,
        "learn/overhead/declared",
        declared.layer(router()),
        router(),
    );

    // The layer alone, over a service that answers at once.
    let noop = || {
        tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        })
    };
    run(c, "learn/noop_service", noop());
    run(c, "learn/discovered_over_noop", discovered.layer(noop()));

    let state = discovered.state().unwrap();
    assert_eq!(state.endpoints()[0].template, "/users/{var1}/orders/{var2}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
