//! The HTTP API (axum): routes, auth, the error envelope, health.

mod auth;
mod body;
pub mod error;
mod extract;
mod health;
mod limit;
pub mod openapi;
mod register;
mod request_id;
pub mod serve;
mod sip;
mod spec;
mod transfers;
mod view;
mod wait;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;
pub use limit::RegisterLimiter;
pub use register::RegisterRequest;
pub use view::{ListResponse, TransferView};

use crate::config::Config;
use crate::delivery::AmqpPublisher;
use crate::store::Store;
use crate::tracker::Tracker;
use crate::transfer::{Transfer, TransferId};
use crate::upstream::UpstreamClient;

/// Handles every handler needs. axum clones the state for every request
/// (and every middleware that takes it): one shared increment, not one per
/// handle.
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl AppState {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

pub struct Handles {
    pub config: Arc<Config>,
    pub store: Store,
    pub tracker: Tracker,
    /// Routes a returned signal to whichever instance polls the transfer.
    pub cluster: crate::cluster::Cluster,
    pub upstream: UpstreamClient,
    /// Every state change goes through it.
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub amqp: AmqpPublisher,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Fired at shutdown: registrations answer 503 from then on.
    pub draining: tokio_util::sync::CancellationToken,
    pub register_limit: Arc<RegisterLimiter>,
    /// The same limit, a bucket of its own, for `POST /v1/sip/returns`: each
    /// new return is a transfer too (a row, its actions, its publishes).
    pub returns_limit: Arc<RegisterLimiter>,
    /// Requests held with `?wait=`; the state change that ends TRACKING
    /// wakes them.
    pub waiters: Arc<crate::transfer::Waiters>,
}

impl AppState {
    async fn find(&self, id: &TransferId) -> Result<Transfer, ApiError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| transfers::not_found(id))
    }

    /// The transfer and its actions in one read, or 404.
    async fn find_full(&self, id: &TransferId) -> Result<Found, ApiError> {
        let (transfer, actions) = self
            .lifecycle
            .with_actions(id)
            .await?
            .ok_or_else(|| transfers::not_found(id))?;
        Ok(Found { transfer, actions })
    }

    /// The full view: stored state, live poll count, and every action.
    async fn view(&self, transfer: Transfer) -> Result<TransferView, ApiError> {
        let actions = self.lifecycle.actions(&transfer.id).await?;
        Ok(self.view_of(Found { transfer, actions }).await)
    }

    /// The full view of what one read found, with the live poll count.
    async fn view_of(&self, found: Found) -> TransferView {
        let live_polls = match found.transfer.state.is_terminal() {
            true => None,
            false => self.tracker.polls(found.transfer.id.clone()).await,
        };
        Self::view_with(found, live_polls)
    }

    /// The full view of what one read found, with `live_polls` when the
    /// tracker gave them.
    fn view_with(found: Found, live_polls: Option<u32>) -> TransferView {
        let Found { transfer, actions } = found;
        let mut view = TransferView::summary(transfer);
        if let Some(polls) = live_polls {
            view.polls = view.polls.max(polls);
        }
        view.actions = Some(actions);
        view
    }

    /// See [`auth::integration_name`].
    fn integration_of(&self, token: Option<limit::TokenId>) -> String {
        auth::integration_name(&self.config.http.api_tokens, token)
    }

    /// Refuse an unusable callback at registration, not hours later: bad
    /// scheme, a forbidden address (resolved now), or no signing secret.
    async fn check_callback(&self, url: &str) -> Result<(), ApiError> {
        let webhook = &self.config.webhook;
        crate::delivery::webhook::check_url_resolved(&webhook.policy(), url)
            .await
            .map_err(|e| ApiError::Invalid(format!("callbackUrl: {e}")))?;
        if webhook.secret.is_none() {
            return Err(ApiError::Invalid(
                "callbackUrl needs webhook.secret on the bridge (BRIDGE_WEBHOOK__SECRET=whsec_...)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A transfer and its actions as one read found them (or a commit left them).
pub(crate) struct Found {
    pub transfer: Transfer,
    pub actions: Vec<crate::outbox::ActionView>,
}

/// The whole API as one router, usable with `oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/transfers", post(transfers::create).get(transfers::list))
        .route(
            "/transfers/{id}",
            get(transfers::get_one).delete(transfers::cancel),
        )
        .route("/transfers/{id}/returned", post(transfers::returned))
        .route("/transfers/{id}/redeliver", post(transfers::redeliver))
        .route("/transfers/{id}/sip", get(sip::instruction))
        .route("/sip/returns", post(sip::returns))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    openapi::document(),
                )
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::read_whole,
        ))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}
