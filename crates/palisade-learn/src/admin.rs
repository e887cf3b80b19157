//! The admin API: what was learned, as JSON, in an axum `Router`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use palisade_core::problem::Problem;
use serde::Deserialize;

use crate::collector::Mark;
use crate::state::LearnedState;

/// The body of `PUT /marks`.
#[derive(Debug, Deserialize)]
struct MarkRequest {
    method: String,
    #[serde(default = "any_host")]
    host: String,
    template: String,
    mark: Mark,
}

fn any_host() -> String {
    "*".to_owned()
}

impl LearnedState {
    /// The admin API over this state, as an axum `Router` to mount where
    /// the application chooses (nothing serves it otherwise):
    ///
    /// | route | answer |
    /// | --- | --- |
    /// | `GET /endpoints` | [`endpoints`](Self::endpoints) as JSON |
    /// | `GET /endpoints/ignored` | [`ignored`](Self::ignored) |
    /// | `GET /posture` | [`posture`](Self::posture) |
    /// | `GET /snapshot` | [`snapshot`](Self::snapshot) |
    /// | `GET /openapi.json` | [`openapi`](Self::openapi) |
    /// | `PUT /marks` | marks an endpoint (below); 204, or 404 when not tracked |
    ///
    /// The body of `PUT /marks` names the endpoint and the mark (`saved`,
    /// `ignored` or `none`); `host` defaults to `*`:
    /// `{"method": "GET", "host": "*", "template": "/users/{var1}", "mark": "saved"}`.
    ///
    /// The admin API shows the shape of the API and can change what is
    /// reported: put it behind authentication. For example, with a bearer
    /// secret checked by a middleware (compare secrets in constant time in
    /// production, or use your identity provider):
    ///
    /// ```
    /// use axum::{Router, extract::Request, http::StatusCode, middleware::{self, Next}};
    /// use palisade_learn::LearnLayer;
    ///
    /// let learn = LearnLayer::builder().build()?;
    /// let admin = learn.state().unwrap().admin_router().layer(middleware::from_fn(
    ///     |request: Request, next: Next| async move {
    ///         let token = request.headers().get("authorization");
    ///         if token.is_some_and(|t| t == "Bearer admin-secret") {
    ///             Ok(next.run(request).await)
    ///         } else {
    ///             Err(StatusCode::UNAUTHORIZED)
    ///         }
    ///     },
    /// ));
    /// let app: Router = Router::new().nest("/admin/palisade", admin);
    /// # let _ = app;
    /// # Ok::<(), palisade_core::ConfigError>(())
    /// ```
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route(
                "/endpoints",
                get(|State(s): State<LearnedState>| async move { Json(s.endpoints()) }),
            )
            .route(
                "/endpoints/ignored",
                get(|State(s): State<LearnedState>| async move { Json(s.ignored()) }),
            )
            .route(
                "/posture",
                get(|State(s): State<LearnedState>| async move { Json(s.posture()) }),
            )
            .route(
                "/snapshot",
                get(|State(s): State<LearnedState>| async move { Json(s.snapshot()) }),
            )
            .route(
                "/openapi.json",
                get(|State(s): State<LearnedState>| async move { Json(s.openapi()) }),
            )
            .route("/marks", put(mark))
            .with_state(self.clone())
    }
}

async fn mark(State(state): State<LearnedState>, Json(body): Json<MarkRequest>) -> Response {
    if state.mark(&body.method, &body.host, &body.template, body.mark) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Problem::new(
            StatusCode::NOT_FOUND,
            "https://palisade.invalid/problems/unknown-endpoint",
            "unknown endpoint",
        )
        .with_detail("no tracked endpoint has this method, host and template")
        .into_response()
        .into_response()
    }
}
