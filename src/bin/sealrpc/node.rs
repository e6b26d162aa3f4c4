//! How a command authenticates: a shared key file (`--key`), or node
//! identities from a PKI directory (`--pki-dir`: Noise handshakes, the
//! master's minion key registry, pinned master keys).
use clap::Args;
use sealrpc::channel::ChannelConfig;
use sealrpc::keys::Key;
use std::path::PathBuf;

#[derive(Args, Clone, Debug, Default)]
pub struct NodeArgs {
    /// Shared key file (see `sealrpc keygen --out`): every peer holds it.
    #[arg(long, conflicts_with = "pki_dir", required_unless_present = "pki_dir")]
    pub key: Option<PathBuf>,
    /// PKI directory: this node's key pair and what it trusts (see
    /// `sealrpc keygen --pki-dir`, `sealrpc key`).
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
}

impl NodeArgs {
    /// The channel settings: the shared key, or (identity mode) a random
    /// key that is never used, the identity being set by the caller.
    pub fn config(&self) -> Result<ChannelConfig, String> {
        match &self.key {
            Some(path) => Ok(ChannelConfig::new(
                Key::load(path).map_err(|e| e.to_string())?,
            )),
            None => Ok(ChannelConfig::new(Key::generate())),
        }
    }
}

/// The identity of a command that connects to a master: `DIR/NAME.key`,
/// with the master pinned (fingerprint, or `DIR/master.pub`).
pub fn connecting(
    node: &NodeArgs,
    cfg: &mut ChannelConfig,
    name: &str,
    payload: &[u8],
    fingerprint: Option<String>,
) -> Result<(), String> {
    if let Some(dir) = &node.pki_dir {
        cfg.identity = Some(
            sealrpc::minion::connecting_identity(dir, name, payload, fingerprint)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

/// How a one-shot command (`call`, `publish`) reaches a master.
#[derive(Args, Clone, Debug)]
pub struct MasterConn {
    /// The master's address.
    #[arg(long, default_value = "tcp://127.0.0.1:4506")]
    pub master: String,
    #[command(flatten)]
    node: NodeArgs,
    /// With --pki-dir: the key pair to use, PKI_DIR/NAME.key (on the
    /// master's host, `admin` is on the master's publisher list).
    #[arg(long, default_value = "admin")]
    as_identity: String,
    /// With --pki-dir: the master's key fingerprint to pin (default: the
    /// key in PKI_DIR/master.pub, or trust on first use).
    #[arg(long)]
    master_fingerprint: Option<String>,
}

impl MasterConn {
    /// The channel settings, with the identity set in identity mode.
    pub fn config(
        &self,
        telemetry: Option<sealrpc::telemetry::Telemetry>,
    ) -> Result<ChannelConfig, String> {
        let mut cfg = self.node.config()?.with_telemetry(telemetry);
        let fp = self.master_fingerprint.clone();
        connecting(&self.node, &mut cfg, &self.as_identity, b"", fp)?;
        Ok(cfg)
    }
}
