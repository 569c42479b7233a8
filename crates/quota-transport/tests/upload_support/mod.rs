//! Real, small media files built byte by byte, and helpers to stream bodies.
#![allow(dead_code, unreachable_pub)] // each test file uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};

// ---------- files ----------

/// A PCM WAV: `declared` data bytes in the header, `present` data bytes after it.
pub fn wav(rate: u32, channels: u16, bits: u16, declared: u32, present: usize) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&declared.wrapping_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&declared.to_le_bytes());
    b.extend((0..present).map(|i| (i % 251) as u8));
    b
}

/// A WAV at 8 kHz, mono, 8-bit (8000 bytes a second) declaring `secs` seconds.
pub fn wav_8k(secs: u32, present: usize) -> Vec<u8> {
    wav(8000, 1, 8, secs * 8000, present)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    let mut typed = kind.to_vec();
    typed.extend_from_slice(data);
    c.extend_from_slice(&typed);
    c.extend_from_slice(&crc32(&typed).to_be_bytes());
    c
}

/// A valid 1×1 grey PNG, padded with a private ancillary chunk to at least `len` bytes.
pub fn png(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    // zlib, one stored block holding the scanline [filter 0, pixel 0]; adler32 = 0x00020001.
    b.extend(png_chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF, 0, 0, 0x00, 0x02, 0x00, 0x01,
        ],
    ));
    let end = png_chunk(b"IEND", &[]);
    let room = len.saturating_sub(b.len() + end.len() + 12);
    if room > 0 {
        b.extend(png_chunk(b"paDd", &vec![0x5A; room]));
    }
    b.extend(end);
    b
}

/// An ISO box.
pub fn iso_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

fn mvhd_tail() -> Vec<u8> {
    let mut t = 0x0001_0000u32.to_be_bytes().to_vec(); // rate 1.0
    t.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    t.extend_from_slice(&[0; 10]); // reserved
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        t.extend_from_slice(&v.to_be_bytes()); // unity matrix
    }
    t.extend_from_slice(&[0; 24]); // pre-defined
    t.extend_from_slice(&2u32.to_be_bytes()); // next track id
    t
}

/// `mvhd` version 0 (32-bit times).
pub fn mvhd_v0(timescale: u32, duration: u32) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&[0; 8]); // creation, modification
    p.extend_from_slice(&timescale.to_be_bytes());
    p.extend_from_slice(&duration.to_be_bytes());
    p.extend(mvhd_tail());
    iso_box(b"mvhd", &p)
}

/// `mvhd` version 1 (64-bit times).
pub fn mvhd_v1(timescale: u32, duration: u64) -> Vec<u8> {
    let mut p = vec![1, 0, 0, 0];
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&timescale.to_be_bytes());
    p.extend_from_slice(&duration.to_be_bytes());
    p.extend(mvhd_tail());
    iso_box(b"mvhd", &p)
}

pub fn ftyp(major: &[u8; 4]) -> Vec<u8> {
    let mut p = major.to_vec();
    p.extend_from_slice(&[0, 0, 2, 0]);
    p.extend_from_slice(major);
    p.extend_from_slice(b"isom");
    iso_box(b"ftyp", &p)
}

/// A minimal MP4: `ftyp`, `moov` holding `mvhd`, and an `mdat` of `mdat_len`
/// bytes; `moov` before or after `mdat`.
pub fn mp4(major: &[u8; 4], mvhd: Vec<u8>, mdat_len: usize, moov_first: bool) -> Vec<u8> {
    let moov = iso_box(b"moov", &mvhd);
    let mdat = iso_box(b"mdat", &vec![0xA5; mdat_len]);
    let mut b = ftyp(major);
    if moov_first {
        b.extend(moov);
        b.extend(mdat);
    } else {
        b.extend(mdat);
        b.extend(moov);
    }
    b
}

/// An MP4 video lasting `secs` seconds (timescale 1000), `mdat_len` bytes of media.
pub fn mp4_secs(secs: u32, mdat_len: usize) -> Vec<u8> {
    mp4(b"isom", mvhd_v0(1000, secs * 1000), mdat_len, true)
}

/// An AIFF declaring `frames` sample frames at `rate` Hz (integer rates).
pub fn aiff(frames: u32, rate: u32) -> Vec<u8> {
    let log2 = 31 - rate.leading_zeros();
    let exponent = (16383 + log2) as u16;
    let mantissa = u64::from(rate) << (63 - log2);
    let mut comm = 1u16.to_be_bytes().to_vec();
    comm.extend_from_slice(&frames.to_be_bytes());
    comm.extend_from_slice(&8u16.to_be_bytes());
    comm.extend_from_slice(&exponent.to_be_bytes());
    comm.extend_from_slice(&mantissa.to_be_bytes());
    let mut body = b"AIFF".to_vec();
    body.extend_from_slice(b"COMM");
    body.extend_from_slice(&(comm.len() as u32).to_be_bytes());
    body.extend(comm);
    body.extend_from_slice(b"SSND\0\0\0\x08\0\0\0\0\0\0\0\0");
    let mut b = b"FORM".to_vec();
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend(body);
    b
}

/// An AVI header: `frames` frames of `micros` microseconds each.
pub fn avi(frames: u32, micros: u32) -> Vec<u8> {
    let mut avih = Vec::new();
    for v in [micros, 0, 0, 0, frames, 0, 1, 0, 320, 240, 0, 0, 0, 0] {
        avih.extend_from_slice(&v.to_le_bytes());
    }
    let mut hdrl = b"hdrlavih".to_vec();
    hdrl.extend_from_slice(&(avih.len() as u32).to_le_bytes());
    hdrl.extend(avih);
    let mut b = b"RIFF\0\x10\0\0AVI LIST".to_vec();
    b.extend_from_slice(&(hdrl.len() as u32).to_le_bytes());
    b.extend(hdrl);
    b
}

/// MPEG-1 layer III, 128 kbit/s, 44.1 kHz, stereo: 417-byte frames of 1152 samples.
const MP3_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x04];
const MP3_FRAME_LEN: usize = 417;

/// An MP3 whose first frame is a Xing header declaring `declared_frames`,
/// followed by `present_frames` silent frames.
pub fn mp3_xing(declared_frames: u32, present_frames: usize) -> Vec<u8> {
    let mut first = MP3_HEADER.to_vec();
    first.extend_from_slice(&[0; 32]); // side information
    first.extend_from_slice(b"Xing");
    first.extend_from_slice(&1u32.to_be_bytes()); // frames field present
    first.extend_from_slice(&declared_frames.to_be_bytes());
    first.resize(MP3_FRAME_LEN, 0);
    let mut b = first;
    for _ in 0..present_frames {
        b.extend_from_slice(&MP3_HEADER);
        b.resize(b.len() + MP3_FRAME_LEN - 4, 0);
    }
    b
}

/// An MP3 of `frames` plain frames (no Xing header).
pub fn mp3_plain(frames: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..frames {
        b.extend_from_slice(&MP3_HEADER);
        b.resize(b.len() + MP3_FRAME_LEN - 4, 0);
    }
    b
}

/// A FLAC stream header whose STREAMINFO declares `total_samples` at `rate` Hz.
pub fn flac(rate: u32, total_samples: u64) -> Vec<u8> {
    let mut b = b"fLaC".to_vec();
    b.extend_from_slice(&[0x80, 0, 0, 34]); // last metadata block, STREAMINFO, 34 bytes
    b.extend_from_slice(&4096u16.to_be_bytes());
    b.extend_from_slice(&4096u16.to_be_bytes());
    b.extend_from_slice(&[0; 6]); // min/max frame size unknown
                                  // rate: 20 bits, channels - 1: 3 bits, bits per sample - 1: 5 bits, samples: 36 bits.
    let packed: u64 =
        (u64::from(rate) << 44) | (1 << 41) | (15 << 36) | (total_samples & 0xF_FFFF_FFFF);
    b.extend_from_slice(&packed.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // MD5
    b
}

/// The start of a WebM file (EBML header).
pub fn webm(len: usize) -> Vec<u8> {
    let mut b = vec![
        0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x84,
    ];
    b.extend_from_slice(b"webm");
    b.resize(len, 0x11);
    b
}

// ---------- multipart ----------

pub const BOUNDARY: &str = "----quota-test-boundary-7MA4YWxkTrZu0gW";

pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

pub fn file<'a>(
    name: &'a str,
    filename: &'a str,
    content_type: &'a str,
    data: &'a [u8],
) -> Part<'a> {
    Part {
        name,
        filename: Some(filename),
        content_type: Some(content_type),
        data,
    }
}

pub fn field<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        filename: None,
        content_type: None,
        data: value.as_bytes(),
    }
}

/// A multipart/form-data body with [`BOUNDARY`].
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for part in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(filename) = part.filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        b.extend_from_slice(disposition.as_bytes());
        b.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            b.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(part.data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

pub fn multipart_headers(len: Option<usize>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        format!("multipart/form-data; boundary={BOUNDARY}")
            .parse()
            .unwrap(),
    );
    if let Some(len) = len {
        headers.insert(http::header::CONTENT_LENGTH, len.into());
    }
    headers
}

// ---------- bodies ----------

/// `bytes` as a streaming body of `chunk`-byte frames.
pub fn chunked(
    bytes: Vec<u8>,
    chunk: usize,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync> {
    let bytes = Bytes::from(bytes);
    let frames: Vec<_> = (0..bytes.len())
        .step_by(chunk)
        .map(|at| Ok(Frame::data(bytes.slice(at..(at + chunk).min(bytes.len())))))
        .collect();
    StreamBody::new(stream::iter(frames))
}

/// Reads a body to its end or first error: the data forwarded, and the error.
pub async fn drain<B>(body: B) -> (Vec<u8>, Option<B::Error>)
where
    B: Body<Data = Bytes>,
{
    let mut body = Box::pin(body);
    let mut forwarded = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    forwarded.extend_from_slice(&data);
                }
            }
            Err(error) => return (forwarded, Some(error)),
        }
    }
    (forwarded, None)
}
