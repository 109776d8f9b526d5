//! The one bounded binary codec every wire and disk format is built on: a `Writer` that appends
//! little-endian fields and a `Reader` that takes them back, checking every length against both
//! a caller's limit and the bytes actually present, so a decoder built on it never panics and
//! never allocates more than its input backs. It knows no message types: `Decode`/`Encode`
//! implementations in each subsystem (frames, blocks, Raft messages, training state, cluster
//! commands) say what the fields are.

/// Why bytes could not be decoded. `offset` is where in the input the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field did.
    #[error("input ends at byte {len}, but {what} needs {needed} bytes at offset {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Length of the whole input.
        len: usize,
    },
    /// A declared count or length exceeds its limit.
    #[error("{what} declares {count} at offset {offset}, more than the limit of {limit}")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// The declared count.
        count: u64,
        /// The most allowed.
        limit: usize,
        /// Where the count starts.
        offset: usize,
    },
    /// A tag byte (enum variant, bool, version) has no meaning here.
    #[error("unknown {what} tag {tag} at offset {offset}")]
    BadTag {
        /// What the tag selects.
        what: &'static str,
        /// The byte found.
        tag: u8,
        /// Where it is.
        offset: usize,
    },
    /// A field decoded but its value breaks a rule of the format.
    #[error("invalid {what} at offset {offset}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why it is refused.
        reason: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// Bytes remain after the value ended.
    #[error("{extra} unexpected bytes after the end of the value (offset {offset})")]
    Trailing {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        extra: usize,
    },
}

/// A value with a binary encoding.
pub trait Encode {
    /// Appends this value's encoding.
    fn encode_to(&self, out: &mut Writer);

    /// This value's encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Writer::new();
        self.encode_to(&mut out);
        out.into_bytes()
    }
}

/// A value that can be read back from its encoding, with every size bounded.
pub trait Decode: Sized {
    /// Reads one value at the reader's position.
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a whole input: one value and nothing after it.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = Self::decode_from(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

/// Appends little-endian fields to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends raw bytes with no length prefix.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Writer {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, value: u8) -> &mut Writer {
        self.bytes.push(value);
        self
    }

    /// Appends a bool as one byte (0 or 1).
    pub fn bool(&mut self, value: bool) -> &mut Writer {
        self.u8(u8::from(value))
    }

    /// Appends a little-endian u16.
    pub fn u16(&mut self, value: u16) -> &mut Writer {
        self.raw(&value.to_le_bytes())
    }

    /// Appends a little-endian u32.
    pub fn u32(&mut self, value: u32) -> &mut Writer {
        self.raw(&value.to_le_bytes())
    }

    /// Appends a little-endian u64.
    pub fn u64(&mut self, value: u64) -> &mut Writer {
        self.raw(&value.to_le_bytes())
    }

    /// Appends a little-endian IEEE-754 f32.
    pub fn f32(&mut self, value: f32) -> &mut Writer {
        self.raw(&value.to_le_bytes())
    }

    /// Appends a little-endian IEEE-754 f64.
    pub fn f64(&mut self, value: f64) -> &mut Writer {
        self.raw(&value.to_le_bytes())
    }

    /// Appends a count as a u32 (the form `Reader::count` reads).
    ///
    /// # Panics
    /// If `count` exceeds `u32::MAX`: encoders only write what their own limits allow.
    pub fn count(&mut self, count: usize) -> &mut Writer {
        let count = u32::try_from(count).expect("a count within the format's u32 limit");
        self.u32(count)
    }

    /// Appends a u32 length and the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Writer {
        self.count(bytes.len()).raw(bytes)
    }

    /// Appends a u32 length and the UTF-8 bytes of a string.
    pub fn str(&mut self, value: &str) -> &mut Writer {
        self.bytes(value.as_bytes())
    }

    /// Appends a u32 count and the floats.
    pub fn floats(&mut self, values: &[f32]) -> &mut Writer {
        self.count(values.len());
        if cfg!(target_endian = "little") {
            // Little-endian floats are their own wire bytes: one copy, not one push per value.
            self.bytes.extend_from_slice(bytemuck::cast_slice(values));
        } else {
            self.bytes.reserve(values.len() * 4);
            for value in values {
                self.f32(*value);
            }
        }
        self
    }

    /// Appends an encodable value.
    pub fn put<T: Encode + ?Sized>(&mut self, value: &T) -> &mut Writer {
        value.encode_to(self);
        self
    }
}

/// A bounds-checked cursor over an input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// Where the next field starts.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// An error for a field at the current position that breaks a rule of the format.
    pub fn invalid(&self, what: &'static str, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            what,
            reason,
            offset: self.offset,
        }
    }

    /// Takes the next `len` raw bytes.
    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.offset.checked_add(len);
        match end.and_then(|end| self.bytes.get(self.offset..end)) {
            Some(slice) => {
                self.offset += len;
                Ok(slice)
            }
            None => Err(DecodeError::Truncated {
                what,
                offset: self.offset,
                needed: len,
                len: self.bytes.len(),
            }),
        }
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Takes one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Takes a bool written as 0 or 1; any other byte is a `BadTag`.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let offset = self.offset;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::BadTag { what, tag, offset }),
        }
    }

    /// Takes a little-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Takes a little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Takes a little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Takes a little-endian f32.
    pub fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// Takes a little-endian f64.
    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Takes a u32 count of items that each take at least `min_item` bytes. The count must
    /// be ≤ `limit` and backed by the remaining input, so a caller may allocate for it.
    pub fn count(
        &mut self,
        what: &'static str,
        limit: usize,
        min_item: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let count = self.u32(what)?;
        self.check_count(what, u64::from(count), limit, min_item, offset)
    }

    /// Checks a count read by the caller in its own width (as `count` does for a u32).
    pub fn check_count(
        &self,
        what: &'static str,
        count: u64,
        limit: usize,
        min_item: usize,
        offset: usize,
    ) -> Result<usize, DecodeError> {
        if count > limit as u64 {
            return Err(DecodeError::TooLong {
                what,
                count,
                limit,
                offset,
            });
        }
        // `count ≤ limit` fits in usize.
        let count = count as usize;
        let needed = count.saturating_mul(min_item.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.offset,
                needed,
                len: self.bytes.len(),
            });
        }
        Ok(count)
    }

    /// Takes a u32 length (≤ `limit`) and that many bytes.
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.count(what, limit, 1)?;
        self.take(len, what)
    }

    /// Takes a u32 length (≤ `limit` bytes) and a UTF-8 string.
    pub fn str(&mut self, what: &'static str, limit: usize) -> Result<&'a str, DecodeError> {
        let offset = self.offset;
        let bytes = self.bytes(what, limit)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Invalid {
            what,
            reason: "not UTF-8",
            offset,
        })
    }

    /// Takes a u32 count (≤ `limit`) and that many little-endian f32s.
    pub fn floats(&mut self, what: &'static str, limit: usize) -> Result<Vec<f32>, DecodeError> {
        let count = self.count(what, limit, 4)?;
        let bytes = self.take(count * 4, what)?;
        if cfg!(target_endian = "little") {
            // One copy into aligned floats (the input may sit at any offset).
            return Ok(bytemuck::pod_collect_to_vec(bytes));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Takes a u32 count (≤ `limit`) of values, each at least `min_item` bytes long.
    pub fn list<T: Decode>(
        &mut self,
        what: &'static str,
        limit: usize,
        min_item: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(what, limit, min_item)?;
        (0..count).map(|_| T::decode_from(self)).collect()
    }

    /// Takes a decodable value.
    pub fn get<T: Decode>(&mut self) -> Result<T, DecodeError> {
        T::decode_from(self)
    }

    /// Succeeds only if the whole input has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing {
                offset: self.offset,
                extra,
            }),
        }
    }
}

impl Encode for [u8; 32] {
    fn encode_to(&self, out: &mut Writer) {
        out.raw(self);
    }
}

impl Decode for [u8; 32] {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.array("32-byte hash")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq)]
    struct Sample {
        flag: bool,
        small: u16,
        word: u64,
        name: String,
        floats: Vec<f32>,
        hashes: Vec<[u8; 32]>,
    }

    impl Encode for Sample {
        fn encode_to(&self, out: &mut Writer) {
            out.bool(self.flag)
                .u16(self.small)
                .u64(self.word)
                .str(&self.name)
                .floats(&self.floats)
                .count(self.hashes.len());
            for hash in &self.hashes {
                out.put(hash);
            }
        }
    }

    impl Decode for Sample {
        fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
            Ok(Sample {
                flag: r.bool("flag")?,
                small: r.u16("small")?,
                word: r.u64("word")?,
                name: r.str("name", 64)?.to_owned(),
                floats: r.floats("floats", 1024)?,
                hashes: r.list("hashes", 16, 32)?,
            })
        }
    }

    fn sample() -> Sample {
        Sample {
            flag: true,
            small: 513,
            word: u64::MAX - 3,
            name: "learning_rate".into(),
            floats: vec![1.5, -0.0, f32::MIN_POSITIVE],
            hashes: vec![[7; 32], [9; 32]],
        }
    }

    #[test]
    fn round_trips() {
        let bytes = sample().to_bytes();
        assert_eq!(Sample::from_bytes(&bytes), Ok(sample()));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                Sample::from_bytes(&bytes[..cut]).is_err(),
                "accepted {cut} of {} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = sample().to_bytes();
        bytes.push(0);
        assert!(matches!(
            Sample::from_bytes(&bytes),
            Err(DecodeError::Trailing { extra: 1, .. })
        ));
    }

    #[test]
    fn counts_above_the_limit_or_the_input_are_refused_before_allocating() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert!(matches!(
            r.floats("floats", 1 << 20),
            Err(DecodeError::TooLong {
                count: 4_294_967_295,
                ..
            })
        ));
        let mut w = Writer::new();
        w.u32(10).raw(&[0; 8]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert!(matches!(
            r.floats("floats", 1 << 20),
            Err(DecodeError::Truncated { needed: 40, .. })
        ));
    }

    #[test]
    fn bad_bool_and_utf8_name_the_field() {
        let err = Reader::new(&[2]).bool("flag").unwrap_err();
        assert_eq!(err.to_string(), "unknown flag tag 2 at offset 0");
        let mut w = Writer::new();
        w.bytes(&[0xff, 0xfe]);
        let bytes = w.into_bytes();
        let err = Reader::new(&bytes).str("name", 8).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Sample::from_bytes(&bytes);
        }
    }
}
