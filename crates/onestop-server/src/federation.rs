//! A federation of nodes (跨统筹区联网): each node holds the people of some regions in its own
//! database; a request about a person of another node's region is forwarded to that node,
//! which owns the person's accumulators and computes and commits the settlement.
//!
//! The configuration is a TOML file (`onestop serve --federation FILE`):
//!
//! ```toml
//! [node]
//! name = "langfang"
//! regions = ["131000"]      # whose people live in this node's database
//! timeout_ms = 3000         # bound on a forwarded request (default 3000)
//! status_refresh_ms = 10000 # how often peers' statuses are asked for (default 10000)
//!
//! [[peers]]
//! name = "beijing"
//! regions = ["110000"]
//! url = "http://10.0.0.2:8080"
//! ```
//!
//! Nodes trust each other through a shared secret (`ONESTOP_FEDERATION_SECRET`, never in the
//! file): a forwarded request carries it and the identity of the institution the forwarding node
//! authenticated. Peers are `http://` on a private network, or `https://` verified by the CA
//! file `ca` (in `[node]`). A running node reads the file again on SIGHUP: the peers, the
//! bound, the refresh and the CA may change then ([`Federation::may_become`]); the node's name
//! and its own regions change only with a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use onestop_api::service::StatusDto;
use onestop_core::Region;
use onestop_store::{Institution, Role};
use serde::Deserialize;

/// Carries the shared secret on a forwarded request.
pub const SECRET_HEADER: &str = "x-onestop-federation-secret";
/// Carries the forwarded actor: `institution_id;region;level;role`.
pub const ACTOR_HEADER: &str = "x-onestop-actor";
/// Names the node that forwarded a request.
pub const FROM_HEADER: &str = "x-onestop-forwarded-by";
/// The default bound on a forwarded request.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);
/// A peer's status is asked for at most this often, unless the file says otherwise.
pub const STATUS_REFRESH: Duration = Duration::from_secs(10);
/// Peers a node may have.
pub const PEERS_MAX: usize = 64;

/// Another node and the regions whose people it holds.
#[derive(Clone, Debug)]
pub struct Peer {
    pub name: String,
    pub regions: Vec<Region>,
    pub url: String,
}

/// Where a region's people live.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    Local,
    Peer(&'a Peer),
    /// No node of the federation serves the region.
    Unknown,
}

/// This node's place in a federation.
pub struct Federation {
    pub node: String,
    pub local: Vec<Region>,
    pub peers: Vec<Peer>,
    pub timeout: Duration,
    /// How often peers' statuses are asked for (`status_refresh_ms`).
    pub status_refresh: Duration,
    secret: String,
    /// The client peers are called with (verifying them by `ca`).
    client: reqwest::Client,
    /// The CA file (`ca`), resolved against the file's directory.
    ca: Option<std::path::PathBuf>,
    /// Each peer's last answer to `GET /v1/status`, and when it was asked.
    statuses: RwLock<HashMap<String, (Instant, Option<StatusDto>)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node: NodeConfig,
    #[serde(default)]
    peers: Vec<PeerConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeConfig {
    name: String,
    regions: Vec<String>,
    timeout_ms: Option<u64>,
    status_refresh_ms: Option<u64>,
    /// The PEM certificate(s) of the CA that signed the `https://` peers' certificates.
    ca: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerConfig {
    name: String,
    regions: Vec<String>,
    url: String,
}

/// A client for the peers: verifying `https://` peers by the CA file `ca`, bounded by `timeout`
/// to connect.
fn peer_client(ca: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    let roots = match ca {
        Some(path) => Some(onestop_store::root_certificates(path).map_err(|e| format!("ca {e}"))?),
        None => None,
    };
    crate::tls::client_builder(roots)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())
}

fn regions(names: &[String], whose: &str) -> Result<Vec<Region>, String> {
    names
        .iter()
        .map(|text| {
            Region::parse(text)
                .ok_or_else(|| format!("{whose}: `{text}` is not a six-digit division code"))
        })
        .collect()
}

/// The regions a federation file says its node holds (`node.regions`), for tools that need no
/// more of it (such as the monthly clearing run on that node).
pub fn node_regions(text: &str) -> Result<Vec<Region>, String> {
    let config: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    regions(&config.node.regions, "node.regions")
}

impl Federation {
    /// Reads a federation file; `secret` is the shared secret (at least 16 characters), and a
    /// relative path in it (`ca`) is relative to `dir`, the file's own directory.
    pub fn from_toml(text: &str, secret: &str, dir: &Path) -> Result<Federation, String> {
        let config: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if secret.chars().count() < 16 {
            return Err(format!(
                "the shared secret (ONESTOP_FEDERATION_SECRET) must have at least 16 characters; \
                 it has {}",
                secret.chars().count()
            ));
        }
        let timeout_ms = config.node.timeout_ms.unwrap_or(3000);
        if !(50..=60_000).contains(&timeout_ms) {
            return Err(format!("timeout_ms {timeout_ms} is not between 50 and 60000"));
        }
        let refresh_ms = config.node.status_refresh_ms.unwrap_or(10_000);
        if !(100..=600_000).contains(&refresh_ms) {
            return Err(format!("status_refresh_ms {refresh_ms} is not between 100 and 600000"));
        }
        if config.peers.len() > PEERS_MAX {
            return Err(format!("a node has at most {PEERS_MAX} peers"));
        }
        let local = regions(&config.node.regions, "node.regions")?;
        let mut peers = Vec::new();
        for peer in config.peers {
            if peer.url.starts_with("https://") && config.node.ca.is_none() {
                // Refused here rather than failing every forward later.
                return Err(format!(
                    "peer {}: url `{}` is https:// but the node names no `ca` to verify it by \
                     (the PEM certificate of the CA that signed the peers')",
                    peer.name, peer.url
                ));
            }
            if !peer.url.starts_with("http://") && !peer.url.starts_with("https://") {
                return Err(format!("peer {}: url `{}` is not http(s)://", peer.name, peer.url));
            }
            let served = regions(&peer.regions, &format!("peer {}", peer.name))?;
            peers.push(Peer { name: peer.name, regions: served, url: peer.url });
        }
        let mut seen: Vec<Region> = local.clone();
        for region in peers.iter().flat_map(|p| &p.regions) {
            if seen.contains(region) {
                return Err(format!("region {region} is served by two nodes"));
            }
            seen.push(*region);
        }
        let timeout = Duration::from_millis(timeout_ms);
        let ca = config.node.ca.map(|path| dir.join(path));
        let client = peer_client(ca.as_deref(), timeout)?;
        Ok(Federation {
            node: config.node.name,
            local,
            peers,
            timeout,
            status_refresh: Duration::from_millis(refresh_ms),
            secret: secret.to_owned(),
            client,
            ca,
            statuses: RwLock::default(),
        })
    }

    /// The client peers are called with.
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Whether `next` (the federation file read again) may take this one's place in a running
    /// node: its peers, their regions and addresses, the bound, the refresh and the CA may
    /// change; the node's name and its own regions may not (the people of those regions are in
    /// this node's database: moving a region is a migration of data, not a reload).
    pub fn may_become(&self, next: &Federation) -> Result<(), String> {
        if next.node != self.node {
            return Err(format!(
                "node.name changed from `{}` to `{}`: a node's name changes with a restart",
                self.node, next.node
            ));
        }
        let mut before = self.local.clone();
        let mut after = next.local.clone();
        before.sort_unstable();
        after.sort_unstable();
        if before != after {
            let shown = |regions: &[Region]| {
                regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            return Err(format!(
                "node.regions changed from [{}] to [{}]: the people of a region live in its \
                 node's database, so a region moves with its data and a restart, not a reload",
                shown(&before),
                shown(&after)
            ));
        }
        Ok(())
    }

    /// Hands the peers' last known statuses to `next`, for the peers it keeps at the same
    /// address, so that their maintenance windows are not forgotten by a reload.
    pub fn hand_statuses_to(&self, next: &Federation) {
        let Ok(known) = self.statuses.read() else { return };
        let Ok(mut statuses) = next.statuses.write() else { return };
        for peer in &next.peers {
            let same = self.peers.iter().any(|p| p.name == peer.name && p.url == peer.url);
            if let Some(status) = known.get(&peer.name).filter(|_| same) {
                statuses.insert(peer.name.clone(), status.clone());
            }
        }
    }

    /// The CA file peers are verified by, if any.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    pub fn route(&self, region: Region) -> Route<'_> {
        if self.local.contains(&region) {
            return Route::Local;
        }
        match self.peers.iter().find(|p| p.regions.contains(&region)) {
            Some(peer) => Route::Peer(peer),
            None => Route::Unknown,
        }
    }

    /// Compares a presented secret in time independent of where it differs.
    pub fn secret_matches(&self, given: &[u8]) -> bool {
        let want = self.secret.as_bytes();
        given.len() == want.len() && given.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// A peer's last known status (however old), if it ever answered.
    pub fn peer_status(&self, peer: &str) -> Option<StatusDto> {
        self.statuses.read().ok()?.get(peer).and_then(|(_, status)| status.clone())
    }

    /// Asks every peer whose status is older than `status_refresh` for it again; a peer that
    /// does not answer keeps its last known windows and is marked unreachable.
    pub async fn refresh_statuses(&self) {
        for peer in &self.peers {
            let fresh =
                self.statuses.read().ok().and_then(|s| {
                    s.get(&peer.name).map(|(at, _)| at.elapsed() < self.status_refresh)
                });
            if fresh == Some(true) {
                continue;
            }
            // The peer answers with what it knows of its own peers, asking none of them (a peer
            // that asked back would ask this node again, and so on until the bound).
            let url = format!("{}/v1/status?peers=cached", peer.url.trim_end_matches('/'));
            let bound = self.timeout.min(Duration::from_secs(1));
            let answer = self.client().get(url).timeout(bound).send().await;
            let status = match answer {
                Ok(response) if response.status().is_success() => {
                    response.json::<StatusDto>().await.ok()
                }
                _ => None,
            };
            if let Ok(mut statuses) = self.statuses.write() {
                let entry = statuses.entry(peer.name.clone()).or_insert((Instant::now(), None));
                entry.0 = Instant::now();
                match status {
                    Some(status) => entry.1 = Some(status),
                    None => {
                        if let Some(known) = entry.1.as_mut() {
                            for region in &mut known.regions {
                                region.state = "unreachable".to_owned();
                                region.state_zh = "无法连接".to_owned();
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forwarded actor as a header value.
pub fn actor_header(actor: &Institution) -> String {
    let level = actor.level.map(|l| l.code()).unwrap_or("-");
    format!("{};{};{level};{}", actor.institution_id, actor.region, actor.role.code())
}

/// Reads the forwarded actor back.
pub fn parse_actor(text: &str) -> Option<Institution> {
    let mut parts = text.split(';');
    let institution_id = parts.next().filter(|id| onestop_store::model::person_id_is_valid(id))?;
    let region = Region::parse(parts.next()?)?;
    let level = match parts.next()? {
        "-" => None,
        code => Some(onestop_core::HospitalLevel::parse(code)?),
    };
    let role = Role::parse(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let institution_id = institution_id.to_owned();
    Some(Institution { name: institution_id.clone(), institution_id, region, level, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [node]
        name = "langfang"
        regions = ["131000"]
        timeout_ms = 500
        [[peers]]
        name = "beijing"
        regions = ["110000"]
        url = "http://127.0.0.1:1"
    "#;

    #[test]
    fn a_federation_file_routes_each_region_to_one_node() {
        let federation =
            Federation::from_toml(FILE, "0123456789abcdef", Path::new("")).expect("valid");
        assert!(matches!(federation.route(Region(131_000)), Route::Local));
        assert!(matches!(federation.route(Region(110_000)), Route::Peer(p) if p.name == "beijing"));
        assert!(matches!(federation.route(Region(310_000)), Route::Unknown));
        assert_eq!(federation.timeout, Duration::from_millis(500));
        assert!(federation.secret_matches(b"0123456789abcdef"));
        assert!(!federation.secret_matches(b"0123456789abcdeF"));
        assert!(!federation.secret_matches(b"0123456789abcde"));
    }

    #[test]
    fn bad_federation_files_say_what_is_wrong() {
        let twice = FILE.replace("[\"110000\"]", "[\"131000\"]");
        let cases = [
            (FILE, "short", "at least 16 characters"),
            (&twice, "0123456789abcdef", "served by two nodes"),
            (&FILE.replace("500", "10"), "0123456789abcdef", "between 50 and 60000"),
            (&FILE.replace("http://", "ftp://"), "0123456789abcdef", "is not http(s)://"),
            (&FILE.replace("http://", "https://"), "0123456789abcdef", "names no `ca`"),
            (&FILE.replace("\"110000\"", "\"1100\""), "0123456789abcdef", "six-digit"),
            (&FILE.replace("timeout_ms", "timeout"), "0123456789abcdef", "unknown field"),
        ];
        for (text, secret, says) in cases {
            let error = Federation::from_toml(text, secret, Path::new("")).err().expect(says);
            assert!(error.contains(says), "{error}");
        }
        // A relative `ca` is read beside the federation file.
        let https = FILE.replace("timeout_ms", "ca = \"peers-ca.pem\"\ntimeout_ms");
        let https = https.replace("http://", "https://");
        let dir = Path::new("/nonexistent/federation");
        let error = Federation::from_toml(&https, "0123456789abcdef", dir).err().expect("no CA");
        assert!(error.contains("/nonexistent/federation/peers-ca.pem"), "{error}");
    }

    #[test]
    fn a_file_read_again_may_change_the_peers_but_not_the_node_itself() {
        let secret = "0123456789abcdef";
        let running = Federation::from_toml(FILE, secret, Path::new("")).expect("valid");
        let beijing = running.peers[0].clone();
        let status = StatusDto { node: "beijing".into(), now: String::new(), regions: Vec::new() };
        let known = (Instant::now(), Some(status));
        running.statuses.write().expect("lock").insert("beijing".into(), known);

        // Beijing moved, Tianjin joined, the bound changed: taken, and what Beijing's node last
        // said of its windows is kept only where it still answers at the same address.
        let tianjin = "[[peers]]\nname = \"tianjin\"\nregions = [\"120000\"]\n\
                       url = \"http://127.0.0.1:3\"\n";
        let moved = FILE.replace("127.0.0.1:1", "127.0.0.1:2").replace("500", "800") + tianjin;
        let next = Federation::from_toml(&moved, secret, Path::new("")).expect("valid");
        running.may_become(&next).expect("peers may change");
        running.hand_statuses_to(&next);
        assert!(next.peer_status("beijing").is_none(), "a peer at a new address is asked anew");
        assert!(matches!(next.route(Region(120_000)), Route::Peer(p) if p.name == "tianjin"));
        assert_eq!(next.timeout, Duration::from_millis(800));
        let same = FILE.replace("timeout_ms = 500", "timeout_ms = 700");
        let same = Federation::from_toml(&same, secret, Path::new("")).expect("valid");
        running.hand_statuses_to(&same);
        assert_eq!(same.peer_status("beijing").map(|s| s.node), Some("beijing".to_owned()));
        assert_eq!(same.peers[0].url, beijing.url);

        // The node's own name and regions stay as they are while it runs.
        let renamed = FILE.replace("\"langfang\"", "\"tangshan\"");
        let renamed = Federation::from_toml(&renamed, secret, Path::new("")).expect("valid");
        let error = running.may_become(&renamed).expect_err("another name");
        assert!(error.contains("node.name changed from `langfang` to `tangshan`"), "{error}");
        let grown = FILE.replace("[\"131000\"]", "[\"131000\", \"130100\"]");
        let grown = Federation::from_toml(&grown, secret, Path::new("")).expect("valid");
        let error = running.may_become(&grown).expect_err("another region");
        assert!(error.contains("from [131000] to [130100, 131000]"), "{error}");
        // The same regions in another order are the same regions.
        let both = FILE.replace("[\"131000\"]", "[\"131000\", \"130100\"]");
        let reordered = both.replace("[\"131000\", \"130100\"]", "[\"130100\", \"131000\"]");
        let (both, reordered) = (
            Federation::from_toml(&both, secret, Path::new("")).expect("valid"),
            Federation::from_toml(&reordered, secret, Path::new("")).expect("valid"),
        );
        both.may_become(&reordered).expect("the same regions");
    }

    #[test]
    fn the_forwarded_actor_round_trips() {
        let actor = Institution {
            institution_id: "H13100000001".into(),
            region: Region(131_000),
            name: "H13100000001".into(),
            level: Some(onestop_core::HospitalLevel::Level3),
            role: Role::Institution,
        };
        assert_eq!(parse_actor(&actor_header(&actor)), Some(actor));
        for bad in ["", "H1;131000;3", "H1;131000;9;institution", "H 1;131000;3;institution"] {
            assert_eq!(parse_actor(bad), None, "{bad}");
        }
    }
}
