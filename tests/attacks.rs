//! The attacks that hit SaltStack's transport, replayed against sealrpc's
//! master with node identities on every transport (TCP, WebSocket, ZeroMQ).
//! Each test fails if its defence is missing: it asserts what happened
//! (typed errors, handler-run counters, files on disk, other minions still
//! served), and waits on events (ready watchers, connection ends, handler
//! counts), never on fixed sleeps.
//!
//! | module | attack |
//! |---|---|
//! | `unauthenticated` | CVE-2020-11651 (methods reachable before authentication), CVE-2020-11652 (ids that are paths), CVE-2025-62349 (version downgrade) |
//! | `impersonation` | CVE-2024-38822 (acting under another minion's id), CVE-2022-22935 (man in the middle, impersonated master), CVE-2022-22941 (a target resolving to an unaccepted minion) |
//! | `replay`, `replay_zmq` | CVE-2022-22936 / CVE-2024-38823 (replayed requests, replies, publishes) |
//! | `malformed` | CVE-2023-20897 (a malformed frame costs only its own connection) |
//!
//! Trace context from peers is in `tests/attacks_trace.rs` (needs `otel`).
mod support;

#[path = "attacks/impersonation.rs"]
mod impersonation;
#[path = "attacks/malformed.rs"]
mod malformed;
#[path = "attacks/replay.rs"]
mod replay;
#[path = "attacks/replay_zmq.rs"]
mod replay_zmq;
#[path = "attacks/unauthenticated.rs"]
mod unauthenticated;

macro_rules! per_transport {
    ($($scheme:ident),*) => {$(
        mod $scheme {
            const S: &str = stringify!($scheme);
            #[tokio::test]
            async fn cve_2020_11651_unauthenticated_peer_runs_nothing() {
                crate::unauthenticated::unauthenticated_peer_runs_nothing(S).await
            }
            #[tokio::test]
            async fn cve_2020_11652_ids_that_are_paths_are_refused() {
                crate::unauthenticated::ids_that_are_paths_are_refused(S).await
            }
            #[tokio::test]
            async fn cve_2025_62349_other_versions_are_refused() {
                crate::unauthenticated::other_versions_are_refused(S).await
            }
            #[tokio::test]
            async fn cve_2024_38822_minion_cannot_act_as_another() {
                crate::impersonation::minion_cannot_act_as_another(S).await
            }
            #[tokio::test]
            async fn cve_2022_22935_man_in_the_middle_is_refused() {
                crate::impersonation::man_in_the_middle_is_refused(S).await
            }
            #[tokio::test]
            async fn cve_2022_22935_impersonated_master_is_refused() {
                crate::impersonation::impersonated_master_is_refused(S).await
            }
            #[tokio::test]
            async fn cve_2022_22941_unaccepted_minion_is_no_target() {
                crate::impersonation::unaccepted_minion_is_no_target(S).await
            }
            #[tokio::test]
            async fn cve_2022_22936_replayed_requests_and_replies_are_refused() {
                crate::replay::replayed_requests_and_replies_are_refused(S).await
            }
            #[tokio::test]
            async fn cve_2024_38823_replayed_replies_fail_the_call() {
                crate::replay::replayed_replies_fail_the_call(S).await
            }
            #[tokio::test]
            async fn cve_2022_22936_replayed_publish_runs_once() {
                crate::replay::replayed_publish_runs_once(S).await
            }
            #[tokio::test]
            async fn cve_2023_20897_malformed_frames_cost_one_connection() {
                crate::malformed::malformed_frames_cost_one_connection(S).await
            }
            #[tokio::test]
            async fn cve_2023_20897_malformed_frame_to_a_minion_costs_one_connection() {
                crate::malformed::malformed_frame_to_a_minion_costs_one_connection(S).await
            }
        }
    )*};
}

per_transport!(tcp, ws, zmq);

/// ZeroMQ only: on TCP and WebSocket a minion's new connection has new
/// handshake keys, so nothing recorded on the old one opens on it (see
/// `replay::replayed_requests_and_replies_are_refused`).
mod zmq_only {
    #[tokio::test]
    async fn cve_2022_22936_publish_replayed_after_resubscription_runs_nothing() {
        crate::replay_zmq::replay_after_resubscription_runs_nothing().await
    }
}
