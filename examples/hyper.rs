//! The Shield in a plain hyper 1 server, without axum.
//!
//! ```text
//! cargo run --example hyper
//! curl -H 'x-api-key: k-123' localhost:3001/
//! ```
//!
//! Palisade's layers are tower layers, so they wrap any tower service;
//! `hyper_util`'s `TowerToHyperService` hands the result to hyper. `PORT`
//! sets the port (3001 by default).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use palisade::{Identifier, Session, Shield};
use tower::{Layer, service_fn};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shield = Shield::builder()
        .identifier(Identifier::header("x-api-key")?)
        .require_session(true)
        .build()?;

    // The application: a plain async function from request to response.
    let app = service_fn(|request: Request<Incoming>| async move {
        let session = request.extensions().get::<Session>().copied();
        let id = session.and_then(|s| s.id()).map(|id| id.to_string());
        let body = format!("session {}\n", id.unwrap_or_default());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let service = shield.layer(app);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // Each connection gets a clone; clones share the shield's state.
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
