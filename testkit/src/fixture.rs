//! Fixture zones and in-process servers: a cluster loaded from a manifest, built into a snapshot,
//! and clusterdns servers on loopback ports answering it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clusterdns::config::ServeConfig;
use clusterdns::ops::metrics::Metrics;
use clusterdns::serving::Server;
use clusterdns::sources::Publisher;
use clusterdns_zone::{Cluster, PodsMode, Snapshot, ZoneBuilder, ZoneConfig};

/// The cluster a manifest file describes, as the zone model (pods kept).
pub fn load_cluster(path: &Path) -> Cluster {
    match clusterdns::sources::manifest::load(&[path.to_path_buf()], true) {
        Ok((cluster, _)) => cluster,
        Err(error) => panic!("{} does not load: {error}", path.display()),
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
    /// The server's metrics (its `server` label is `dns://:53`, as [`ServeConfig::loopback`]'s
    /// block says).
    pub metrics: Arc<Metrics>,
}

impl TestServer {
    /// Starts a one-worker loopback server answering `cluster`.
    pub fn start(cluster: Cluster, config: ZoneConfig) -> TestServer {
        TestServer::start_with(cluster, config, &ServeConfig::loopback())
    }

    /// Starts a server as `serve` says (its server blocks, workers, addresses, forwarding)
    /// answering `cluster`.
    pub fn start_with(cluster: Cluster, config: ZoneConfig, serve: &ServeConfig) -> TestServer {
        let mut publisher = Publisher::new(config);
        publisher.replace_all(cluster);
        publisher.set_synced();
        publisher.publish();
        let metrics = Arc::new(Metrics::new("dns://:53".into()));
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
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// The store the server reads.
    pub fn store(&self) -> Arc<ArcSwap<Snapshot>> {
        self.publisher.store()
    }
}
