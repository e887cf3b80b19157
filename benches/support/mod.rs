//! What the benches share: the runtime, the timing loops and the request
//! carrying one of many bearer tokens.
//!
//! Requests are always built outside the timed region, in batches, by a
//! function of a running index, so a bench cycles over its sessions across
//! samples. `median` times one service; `overhead` times a layered and a
//! bare service on alternating batches of the same requests and reports the
//! difference per request, which the shared machine's load moves far less
//! than two separate medians.

#![allow(dead_code)] // each bench uses a part

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::Criterion;
use http::Request;
use tokio::runtime::Runtime;
use tower::Service;

/// Requests built ahead of each timed batch.
const BATCH: usize = 500;

/// A single-threaded runtime with I/O and timers, for the services to run on.
pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET /users/7` with the `i`-th token (cycling) as `Authorization`.
pub(crate) fn token_request(tokens: &[String], i: usize) -> Request<Body> {
    Request::get("/users/7")
        .header("authorization", &tokens[i % tokens.len()])
        .body(Body::empty())
        .unwrap()
}

/// Times `svc` on the requests `request(0)`, `request(1)`, ...
pub(crate) fn median<S>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    mut svc: S,
    mut request: impl FnMut(usize) -> Request<Body>,
) where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let mut next = 0;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(BATCH);
                    let batch: Vec<_> = (next..next + n).map(&mut request).collect();
                    next += n;
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

/// Times `layered` and `bare` on alternating batches of the same requests
/// and reports the difference per request.
pub(crate) fn overhead<S, B>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    mut layered: S,
    mut bare: B,
    mut request: impl FnMut(usize) -> Request<Body>,
) where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
    B: Service<Request<Body>>,
    B::Error: std::fmt::Debug,
{
    let mut next = 0;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters as usize {
                    let n = (iters as usize - done).min(BATCH);
                    let one: Vec<_> = (next..next + n).map(&mut request).collect();
                    let two: Vec<_> = (next..next + n).map(&mut request).collect();
                    next += n;
                    let start = Instant::now();
                    for request in one {
                        black_box(layered.call(request).await.unwrap());
                    }
                    with += start.elapsed();
                    let start = Instant::now();
                    for request in two {
                        black_box(bare.call(request).await.unwrap());
                    }
                    without += start.elapsed();
                    done += n;
                }
                // Floored at 1 ns: criterion refuses a zero sample, and
                // under load a sample's bare batches can be the slower ones.
                with.saturating_sub(without).max(Duration::from_nanos(1))
            })
        })
    });
}
