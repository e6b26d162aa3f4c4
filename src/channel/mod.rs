//! The channel layer: the single chokepoint for crypto and trace context.
//!
//! Only this module calls [`Sealer::seal`](crate::wire::Sealer::seal) /
//! [`Opener::open`](crate::wire::Opener::open), and only here is trace
//! context injected into a load (client) or extracted from an authenticated
//! load (server). Transports below it move opaque frames; callers above it
//! see methods, bodies and errors.
mod auth;
mod client;
mod config;
mod connection;
mod drain;
mod handler;
mod hash;
mod outbox;
mod publish;
mod pubsub;
mod retries;
mod server;
mod waiting;

pub use auth::{Authenticated, Identity, PeerRole, Principal, Refusal, Verifier};
pub(crate) use client::error_kind;
pub use client::Client;
pub use config::{parse_url, random_token, ChannelConfig, ReconnectPolicy};
pub(crate) use handler::run_handler;
pub use handler::{HandlerError, Request, Router};
pub use publish::{Job, PeerLink, Published};
pub use pubsub::{PubSender, Subscription};
pub use server::Server;
