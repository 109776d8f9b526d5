//! Mutual TLS for QUIC between nodes: both sides show a self-signed certificate; the custom
//! verifiers accept any such certificate whose handshake signature checks out, name the peer by
//! its key fingerprint and enforce pins. Builds the quinn client and server configs.
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

/// The process-wide crypto provider: ring (builds with a C compiler only).
pub fn provider() -> Arc<CryptoProvider> {
    // Installing twice is harmless; the first install wins and both are ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
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

/// The server side: requires a client certificate and checks it against `pins`.
pub fn server_config(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(PeerVerifier::new(pins, &provider));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport(idle_timeout));
    Ok(config)
}

/// The client side: presents our certificate and checks the server's against `pins`.
pub fn client_config(
    identity: &Identity,
    pins: &[NodeId],
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(PeerVerifier::new(pins, &provider));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
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
