//! Mutual TLS for QUIC between nodes: both sides show a self-signed certificate; the custom
//! verifiers accept any such certificate whose handshake signature checks out, name the peer by
//! its key fingerprint and enforce pins. Builds the quinn client and server configs.
//!
//! Key exchange is post-quantum by default: the crypto provider is aws-lc-rs and a handshake
//! offers and accepts only the hybrid X25519MLKEM768 group (X25519 + ML-KEM-768, so a
//! recording of today's traffic stays safe against a future quantum computer while X25519
//! still protects it if ML-KEM falls). Since each side offers exactly one group, the group of
//! every completed handshake is that group; there is no downgrade to negotiate. Classical
//! X25519 alone (`KeyExchange::X25519`) is an explicit fallback that every node of a network
//! must choose together.
//!
//! Owns rustls configuration only; must not open sockets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rustls::DistinguishedName;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::NetError;
use super::identity::{Identity, NodeId};

/// ALPN protocol id of hashgrad's peer protocol.
pub const ALPN: &[u8] = b"hashgrad/1";
/// The server name dialers present (certificates are not checked against names).
pub const SERVER_NAME: &str = "hashgrad";

/// The key-exchange group of QUIC handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyExchange {
    /// Hybrid post-quantum X25519MLKEM768 only (the default).
    #[default]
    X25519MlKem768,
    /// Classical X25519 only: an explicit fallback, for a whole network at once (a node with
    /// it cannot complete a handshake with a default node).
    X25519,
}

impl KeyExchange {
    /// The TLS name of the group, as logs and `/status` show it.
    pub fn name(self) -> &'static str {
        match self {
            KeyExchange::X25519MlKem768 => "X25519MLKEM768",
            KeyExchange::X25519 => "X25519",
        }
    }

    /// The TLS code point.
    pub fn group(self) -> rustls::NamedGroup {
        match self {
            KeyExchange::X25519MlKem768 => rustls::NamedGroup::X25519MLKEM768,
            KeyExchange::X25519 => rustls::NamedGroup::X25519,
        }
    }
}

impl std::fmt::Display for KeyExchange {
    /// The name as `net.key_exchange` spells it (`x25519mlkem768`); `name` is the TLS name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyExchange::X25519MlKem768 => "x25519mlkem768",
            KeyExchange::X25519 => "x25519",
        })
    }
}

impl std::str::FromStr for KeyExchange {
    type Err = NetError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x25519mlkem768" => Ok(KeyExchange::X25519MlKem768),
            "x25519" => Ok(KeyExchange::X25519),
            other => Err(NetError::Tls(format!(
                "unknown key exchange `{other}`: expected x25519mlkem768 (default) or x25519"
            ))),
        }
    }
}

/// The crypto provider for `key_exchange`: aws-lc-rs, offering and accepting only that group.
pub fn provider_for(key_exchange: KeyExchange) -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![match key_exchange {
        KeyExchange::X25519MlKem768 => kx_group::X25519MLKEM768,
        KeyExchange::X25519 => kx_group::X25519,
    }];
    Arc::new(provider)
}

/// The provider of the default (post-quantum) key exchange. Also installs aws-lc-rs as the
/// process default, for code that asks rustls for one.
pub fn provider() -> Arc<CryptoProvider> {
    // Installing twice is harmless; the first install wins.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    provider_for(KeyExchange::default())
}

/// Accepts any self-signed certificate, checks the handshake signature against its key and,
/// when `pins` is set, refuses every fingerprint not in it.
#[derive(Debug)]
pub struct PeerVerifier {
    pins: Option<HashSet<NodeId>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerVerifier {
    /// A verifier that admits only `pins`, or every peer when `pins` is empty.
    pub fn new(pins: &[NodeId], provider: &CryptoProvider) -> PeerVerifier {
        PeerVerifier {
            pins: (!pins.is_empty()).then(|| pins.iter().copied().collect()),
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let id =
            NodeId::from_certificate(cert).map_err(|e| rustls::Error::General(e.to_string()))?;
        match &self.pins {
            Some(pins) if !pins.contains(&id) => Err(rustls::Error::General(format!(
                "peer {id} is not among the pinned fingerprints"
            ))),
            _ => Ok(()),
        }
    }

    /// The handshake signature check both sides share (TLS 1.3 only, as QUIC requires).
    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::General("QUIC uses TLS 1.3 only".into())
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn transport(idle_timeout: Duration) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(idle_timeout).unwrap_or(quinn::VarInt::MAX.into());
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(idle_timeout / 3))
        .max_concurrent_bidi_streams(256u32.into());
    Arc::new(transport)
}

/// The server side: requires a client certificate and checks it against `pins`; key
/// exchange X25519MLKEM768.
pub fn server_config(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, NetError> {
    server_config_with(identity, pins, idle_timeout, KeyExchange::default())
}

/// The rustls half of `server_config_with` (tests run it over an in-memory pipe).
pub fn server_tls(
    identity: &Identity,
    pins: &[NodeId],
    key_exchange: KeyExchange,
) -> Result<rustls::ServerConfig, NetError> {
    let _ = provider(); // the process default, once
    let provider = provider_for(key_exchange);
    let verifier = Arc::new(PeerVerifier::new(pins, &provider));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}

/// `server_config` with a chosen key exchange.
pub fn server_config_with(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
    key_exchange: KeyExchange,
) -> Result<quinn::ServerConfig, NetError> {
    let tls = server_tls(identity, pins, key_exchange)?;
    tracing::debug!(
        key_exchange = key_exchange.name(),
        "QUIC handshakes accept only this key-exchange group"
    );
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport(idle_timeout));
    Ok(config)
}

/// The client side: presents our certificate and checks the server's against `pins`; key
/// exchange X25519MLKEM768.
pub fn client_config(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, NetError> {
    client_config_with(identity, pins, idle_timeout, KeyExchange::default())
}

/// The rustls half of `client_config_with` (tests run it over an in-memory pipe).
pub fn client_tls(
    identity: &Identity,
    pins: &[NodeId],
    key_exchange: KeyExchange,
) -> Result<rustls::ClientConfig, NetError> {
    let _ = provider(); // the process default, once
    let provider = provider_for(key_exchange);
    let verifier = Arc::new(PeerVerifier::new(pins, &provider));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}

/// `client_config` with a chosen key exchange.
pub fn client_config_with(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
    key_exchange: KeyExchange,
) -> Result<quinn::ClientConfig, NetError> {
    let tls = client_tls(identity, pins, key_exchange)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport(idle_timeout));
    Ok(config)
}

/// The fingerprint of the certificate a connected peer presented.
pub fn peer_id(connection: &quinn::Connection) -> Result<NodeId, NetError> {
    let identity = connection
        .peer_identity()
        .ok_or_else(|| NetError::Certificate("peer presented no certificate".into()))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| NetError::Certificate("peer identity is not a certificate chain".into()))?;
    let cert = chain
        .first()
        .ok_or_else(|| NetError::Certificate("peer certificate chain is empty".into()))?;
    NodeId::from_certificate(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full mutual-TLS 1.3 handshake between our client and server configs over an
    /// in-memory pipe; the group both sides report, or the handshake's error.
    fn handshake(
        client: KeyExchange,
        server: KeyExchange,
    ) -> Result<(rustls::NamedGroup, rustls::NamedGroup), rustls::Error> {
        let a = Identity::generate().expect("identity");
        let b = Identity::generate().expect("identity");
        let client_tls = Arc::new(client_tls(&a, &[], client).expect("client"));
        let server_tls = Arc::new(server_tls(&b, &[], server).expect("server"));
        let name = ServerName::try_from(SERVER_NAME).expect("name");
        let mut client = rustls::ClientConnection::new(client_tls, name)?;
        let mut server = rustls::ServerConnection::new(server_tls)?;
        for _ in 0..16 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).expect("client write");
            }
            let mut slice = &bytes[..];
            while !slice.is_empty() {
                server.read_tls(&mut slice).expect("server read");
                server.process_new_packets()?;
            }
            let mut bytes = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut bytes).expect("server write");
            }
            let mut slice = &bytes[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).expect("client read");
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                let group = |g: Option<&'static dyn rustls::crypto::SupportedKxGroup>| {
                    g.map(|g| g.name()).expect("a group was negotiated")
                };
                return Ok((
                    group(client.negotiated_key_exchange_group()),
                    group(server.negotiated_key_exchange_group()),
                ));
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn two_nodes_negotiate_x25519mlkem768_by_default() {
        let groups = handshake(KeyExchange::default(), KeyExchange::default()).expect("handshake");
        assert_eq!(
            groups,
            (
                rustls::NamedGroup::X25519MLKEM768,
                rustls::NamedGroup::X25519MLKEM768
            )
        );
        assert_eq!(
            KeyExchange::default().group(),
            rustls::NamedGroup::X25519MLKEM768
        );
    }

    #[test]
    fn x25519_is_an_explicit_fallback_that_a_default_node_does_not_accept() {
        let groups = handshake(KeyExchange::X25519, KeyExchange::X25519).expect("handshake");
        assert_eq!(groups.0, rustls::NamedGroup::X25519);
        // No silent downgrade: a default node refuses a classical-only peer, both ways.
        assert!(handshake(KeyExchange::X25519, KeyExchange::default()).is_err());
        assert!(handshake(KeyExchange::default(), KeyExchange::X25519).is_err());
        assert_eq!(
            "x25519".parse::<KeyExchange>().ok(),
            Some(KeyExchange::X25519)
        );
        assert!("ffdhe2048".parse::<KeyExchange>().is_err());
    }
}
