//! Fixture zones and servers: the golden cluster built into a snapshot, and clusterdns servers
//! on loopback ports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use clusterdns::config::ServeConfig;
use clusterdns::ops::metrics::Metrics;
use clusterdns::serving::Server;
use clusterdns::sources::Publisher;
use clusterdns_zone::{Cluster, PodsMode, Snapshot, ZoneBuilder, ZoneConfig};

/// The golden fixture cluster's manifest.
pub fn golden_cluster_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join("cluster.yaml")
}

/// The golden cluster as the zone model (pods kept).
pub fn golden_cluster() -> Cluster {
    match clusterdns::sources::manifest::load(&[golden_cluster_path()], true) {
        Ok((cluster, _)) => cluster,
        Err(error) => panic!("golden cluster does not load: {error}"),
    }
}

/// The zone configuration of the golden cases: cluster.local, TTL 5, the given pods mode.
pub fn zone_config(pods: PodsMode) -> ZoneConfig {
    ZoneConfig {
        pods,
        ..ZoneConfig::default()
    }
}

/// A synced snapshot of `cluster`.
pub fn snapshot(cluster: Cluster, config: ZoneConfig) -> Snapshot {
    let mut builder = ZoneBuilder::new(config);
    builder.replace_all(cluster);
    builder.set_synced();
    builder.publish()
}

/// A running server with its publisher.
pub struct TestServer {
    /// The server (UDP and TCP on the same loopback port).
    pub server: Server,
    /// The publisher feeding it.
    pub publisher: Publisher,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
}

impl TestServer {
    /// Starts a one-worker loopback server answering `cluster`.
    pub fn start(cluster: Cluster, config: ZoneConfig) -> TestServer {
        TestServer::start_with(cluster, config, &ServeConfig::loopback())
    }

    /// Starts a server as `serve` says (its server blocks, workers, addresses) answering
    /// `cluster`.
    pub fn start_with(cluster: Cluster, config: ZoneConfig, serve: &ServeConfig) -> TestServer {
        let mut publisher = Publisher::new(config);
        publisher.replace_all(cluster);
        publisher.set_synced();
        publisher.publish();
        let metrics = Arc::new(Metrics::new("dns://:0".into()));
        let server = match Server::start(serve, publisher.store(), &metrics) {
            Ok(server) => server,
            Err(error) => panic!("test server does not start: {error}"),
        };
        TestServer {
            server,
            publisher,
            metrics,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addrs()[0]
    }

    /// The store the server reads.
    pub fn store(&self) -> Arc<ArcSwap<Snapshot>> {
        self.publisher.store()
    }
}
