//! Reading and writing frames on quinn streams. Reads never allocate more than the frame
//! type's limit; a clean end of stream between frames is `Ok(None)`.

use super::StreamFailure;
use super::frame::{self, FRAME_HEADER_LEN, FrameError, FrameType, Message, ServiceFrame};

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The bytes are not a valid frame: the peer misbehaved.
    Frame(FrameError),
    /// The stream or connection failed, or ended inside a frame.
    Stream(StreamFailure),
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
async fn read_full(recv: &mut quinn::RecvStream, buf: &mut [u8]) -> Result<usize, ReadFailure> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match recv.read(rest).await {
            Ok(Some(n)) => filled += n,
            Ok(None) => break,
            Err(e) => return Err(ReadFailure::Stream(e.into())),
        }
    }
    Ok(filled)
}

/// Reads the next frame; `Ok(None)` when the stream ended cleanly before one began.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
) -> Result<Option<Message>, ReadFailure> {
    Ok(read_sized_frame(recv).await?.map(|(message, _)| message))
}

/// Reads the next frame and its payload length (for event logs).
pub(crate) async fn read_sized_frame(
    recv: &mut quinn::RecvStream,
) -> Result<Option<(Message, usize)>, ReadFailure> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match read_full(recv, &mut header).await? {
        0 => return Ok(None),
        FRAME_HEADER_LEN => {}
        _ => {
            return Err(ReadFailure::Stream(StreamFailure::Truncated));
        }
    }
    let (kind, len) = frame::decode_header(header).map_err(ReadFailure::Frame)?;
    let mut payload = vec![0u8; len];
    if read_full(recv, &mut payload).await? != len {
        return Err(ReadFailure::Stream(StreamFailure::Truncated));
    }
    if let FrameType::Raft(code) | FrameType::Training(code) = kind {
        // Opaque to the transport: the service decodes it (no copy of a large payload).
        return Ok(Some((
            Message::Service(ServiceFrame { code, payload }),
            len,
        )));
    }
    frame::decode_payload(kind, &payload)
        .map(|message| Some((message, len)))
        .map_err(ReadFailure::Frame)
}

/// Encodes and writes one frame.
pub(crate) async fn write_message(
    send: &mut quinn::SendStream,
    message: &Message,
) -> Result<(), ReadFailure> {
    let stream = |e: quinn::WriteError| ReadFailure::Stream(e.into());
    if let Message::Service(service) = message {
        let header = frame::service_header(service).map_err(ReadFailure::Frame)?;
        send.write_all(&header).await.map_err(stream)?;
        return send.write_all(&service.payload).await.map_err(stream);
    }
    let bytes = frame::encode(message).map_err(ReadFailure::Frame)?;
    send.write_all(&bytes).await.map_err(stream)
}
