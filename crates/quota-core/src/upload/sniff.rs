//! File kinds decided by magic numbers, never by the type a client claims.

use core::fmt;

/// How many leading bytes [`FileKind::sniff`] and [`FileFormat::sniff`] look at.
///
/// Every signature we know fits in the first 512 bytes (the longest are
/// MPEG-TS, whose third sync byte sits at offset 376, and an Ogg first page
/// with a long segment table). Sniffing a longer buffer gives the same answer
/// as sniffing its first `SNIFF_LEN` bytes.
///
/// A *shorter* buffer is sniffed as it is: a signature that needs bytes past its
/// end does not match. A caller that streams a file should therefore wait for
/// `SNIFF_LEN` bytes, or for the end of the file if it is shorter, before it
/// sniffs. A file of fewer bytes than its signature needs is
/// [`FileKind::Other`] (an MPEG-TS file needs two packets, 189 bytes, to be
/// recognised; every other format needs at most its first 18 bytes).
pub const SNIFF_LEN: usize = 512;

/// The kind of an uploaded file: what decides its size limit and whether its
/// duration is checked.
///
/// ```
/// use quota_core::upload::FileKind;
/// assert_eq!(FileKind::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), FileKind::Image);
/// assert_eq!(FileKind::sniff(b"fLaC\0\0\0\x22"), FileKind::Audio);
/// assert_eq!(FileKind::sniff(b"{\"prompt\": \"a cat\"}"), FileKind::Other);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum FileKind {
    /// A still or animated image (PNG, JPEG, GIF, WebP, BMP, TIFF, HEIF/AVIF, JPEG XL).
    Image,
    /// Sound only (WAV, MP3, AAC, FLAC, Ogg Vorbis/Opus/FLAC, M4A, AIFF, ...).
    Audio,
    /// Moving pictures (MP4/MOV, WebM/Matroska, AVI, MPEG-TS/PS, FLV, ...).
    Video,
    /// Anything whose bytes match no known signature (text, JSON, archives, ...).
    Other,
}

impl FileKind {
    /// Every kind, in declaration order.
    pub const ALL: [FileKind; 4] = [
        FileKind::Image,
        FileKind::Audio,
        FileKind::Video,
        FileKind::Other,
    ];

    /// The kind of a file, from its first bytes (see [`SNIFF_LEN`]).
    pub fn sniff(first_bytes: &[u8]) -> FileKind {
        FileFormat::sniff(first_bytes).map_or(FileKind::Other, FileFormat::kind)
    }

    /// `true` for audio and video: the kinds whose duration is limited.
    pub const fn is_timed(self) -> bool {
        matches!(self, FileKind::Audio | FileKind::Video)
    }

    /// The lowercase name: `image`, `audio`, `video` or `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FileKind::Image => "image",
            FileKind::Audio => "audio",
            FileKind::Video => "video",
            FileKind::Other => "other",
        }
    }

    /// The noun used in refusal messages: `image file`, `audio file`,
    /// `video file` or `file`.
    pub const fn noun(self) -> &'static str {
        match self {
            FileKind::Image => "image file",
            FileKind::Audio => "audio file",
            FileKind::Video => "video file",
            FileKind::Other => "file",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The container format recognised from a file's first bytes.
///
/// Each format has one [`FileKind`]. Where a container can hold either sound
/// or pictures, the kind is decided as cheaply as the first bytes allow:
///
/// - ISO base media (`ftyp` box): the major brand decides, then the first
///   known compatible brand: `M4A `/`M4B `/`M4P `/`F4A `/`F4B ` are
///   [`M4a`](FileFormat::M4a) (audio), the HEIF and AVIF brands are
///   [`Heif`](FileFormat::Heif) (image), everything else (`isom`, `mp41`,
///   `mp42`, `avc1`, `qt  `, `3gp4`, unknown brands, ...) is
///   [`Mp4`](FileFormat::Mp4) (video). An audio-only `.mp4` with video brands
///   is therefore video.
/// - Ogg: the first packet of the first page decides: Vorbis, Opus, FLAC and
///   Speex are audio; Theora, Dirac, OGM video, a Skeleton header and any
///   stream we do not know are video.
/// - Matroska and WebM are always video: whether a file has a video track is
///   only known from its `Tracks` element, which is not in the first bytes.
///   An audio-only `.webm`/`.mka` is therefore video.
/// - FLV and ASF (WMV/WMA) are always video.
///
/// ```
/// use quota_core::upload::{FileFormat, FileKind};
/// let m4a = b"\0\0\0\x1cftypM4A \0\0\0\0M4A mp42isom";
/// assert_eq!(FileFormat::sniff(m4a), Some(FileFormat::M4a));
/// assert_eq!(FileFormat::M4a.kind(), FileKind::Audio);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileFormat {
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// GIF (`GIF87a`, `GIF89a`).
    Gif,
    /// WebP (`RIFF....WEBP`).
    WebP,
    /// Windows bitmap (`BM` with a known DIB header size).
    Bmp,
    /// TIFF and BigTIFF, either byte order.
    Tiff,
    /// HEIF, HEIC or AVIF (`ftyp` with an image brand).
    Heif,
    /// JPEG XL, bare codestream or container.
    JpegXl,
    /// WAV (`RIFF....WAVE`, or `RF64`/`BW64` for large files).
    Wav,
    /// AIFF and AIFF-C (`FORM....AIFF`/`AIFC`).
    Aiff,
    /// MPEG audio: an ID3v2 tag or an MPEG audio frame header.
    Mp3,
    /// AAC in ADTS frames.
    Aac,
    /// FLAC (`fLaC`).
    Flac,
    /// Ogg carrying Vorbis, Opus, FLAC or Speex.
    OggAudio,
    /// MPEG-4 audio (`ftyp` with brand `M4A `, `M4B `, `M4P `, `F4A ` or `F4B `).
    M4a,
    /// Standard MIDI file (`MThd`).
    Midi,
    /// AMR speech (`#!AMR`).
    Amr,
    /// Apple Core Audio Format (`caff`).
    Caf,
    /// ISO base media or QuickTime video (MP4, MOV, 3GP, ...).
    Mp4,
    /// Matroska or WebM (EBML header `1A 45 DF A3`).
    Matroska,
    /// AVI (`RIFF....AVI `).
    Avi,
    /// MPEG transport stream (sync byte `0x47` every 188 bytes, or 192 for M2TS).
    MpegTs,
    /// MPEG program stream or MPEG video elementary stream (`00 00 01 BA`/`B3`).
    MpegPs,
    /// Flash video (`FLV` version 1).
    Flv,
    /// Ogg carrying Theora, Dirac, OGM video, a Skeleton, or a stream we do not know.
    OggVideo,
    /// ASF: WMV and WMA.
    Asf,
}

impl FileFormat {
    /// The format of a file, from its first bytes (see [`SNIFF_LEN`]); `None`
    /// when no signature matches.
    pub fn sniff(first_bytes: &[u8]) -> Option<FileFormat> {
        let b = first_bytes.get(..SNIFF_LEN).unwrap_or(first_bytes);
        sniff_image(b)
            .or_else(|| sniff_container(b))
            .or_else(|| sniff_frames(b))
    }

    /// The kind of file this format holds.
    pub const fn kind(self) -> FileKind {
        use FileFormat::*;
        match self {
            Png | Jpeg | Gif | WebP | Bmp | Tiff | Heif | JpegXl => FileKind::Image,
            Wav | Aiff | Mp3 | Aac | Flac | OggAudio | M4a | Midi | Amr | Caf => FileKind::Audio,
            Mp4 | Matroska | Avi | MpegTs | MpegPs | Flv | OggVideo | Asf => FileKind::Video,
        }
    }
}

/// Image signatures.
fn sniff_image(b: &[u8]) -> Option<FileFormat> {
    use FileFormat::*;
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Png)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Jpeg)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(Gif)
    } else if riff(b, b"RIFF", b"WEBP") {
        Some(WebP)
    } else if is_bmp(b) {
        Some(Bmp)
    } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|m| b.starts_with(*m))
    {
        Some(Tiff)
    } else if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        Some(JpegXl)
    } else {
        None
    }
}

/// Container signatures at a fixed offset.
fn sniff_container(b: &[u8]) -> Option<FileFormat> {
    use FileFormat::*;
    const ASF: [u8; 8] = [0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11];
    if riff(b, b"RIFF", b"WAVE") || riff(b, b"RF64", b"WAVE") || riff(b, b"BW64", b"WAVE") {
        Some(Wav)
    } else if riff(b, b"RIFF", b"AVI ") {
        Some(Avi)
    } else if riff(b, b"FORM", b"AIFF") || riff(b, b"FORM", b"AIFC") {
        Some(Aiff)
    } else if b.get(4..8) == Some(b"ftyp") {
        Some(iso_bmff(b))
    } else if b.starts_with(b"fLaC") {
        Some(Flac)
    } else if b.starts_with(b"OggS") {
        Some(ogg(b))
    } else if b.len() >= 10 && b.starts_with(b"ID3") && b[3] != 0xFF && b[4] != 0xFF {
        Some(Mp3)
    } else if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(Matroska)
    } else if b.starts_with(b"FLV\x01") {
        Some(Flv)
    } else if b.starts_with(&[0, 0, 1, 0xBA]) || b.starts_with(&[0, 0, 1, 0xB3]) {
        Some(MpegPs)
    } else if b.starts_with(&ASF) {
        Some(Asf)
    } else if b.starts_with(b"MThd\0\0\0\x06") {
        Some(Midi)
    } else if b.starts_with(b"#!AMR") {
        Some(Amr)
    } else if b.starts_with(b"caff") {
        Some(Caf)
    } else if is_quicktime_without_ftyp(b) {
        Some(Mp4)
    } else {
        None
    }
}

/// Formats recognised by their frame structure rather than a file header.
fn sniff_frames(b: &[u8]) -> Option<FileFormat> {
    if is_mpeg_ts(b) {
        Some(FileFormat::MpegTs)
    } else if is_adts(b) {
        Some(FileFormat::Aac)
    } else if is_mpeg_audio_frame(b) {
        Some(FileFormat::Mp3)
    } else {
        None
    }
}

/// `tag` at 0 and `form` at 8: the RIFF family (and IFF's `FORM`).
fn riff(b: &[u8], tag: &[u8; 4], form: &[u8; 4]) -> bool {
    b.get(0..4) == Some(tag.as_slice()) && b.get(8..12) == Some(form.as_slice())
}

fn is_bmp(b: &[u8]) -> bool {
    if b.len() < 18 || !b.starts_with(b"BM") || b[6..10] != [0, 0, 0, 0] {
        return false;
    }
    let dib = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
    matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// An `ftyp` box: classify by major brand, then by compatible brands.
fn iso_bmff(b: &[u8]) -> FileFormat {
    let declared = b
        .get(0..4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize);
    let end = if declared >= 16 {
        declared.min(b.len())
    } else {
        b.len()
    };
    let major = b.get(8..12).and_then(brand_format);
    let compatible = || {
        b.get(16..end)
            .unwrap_or(&[])
            .chunks_exact(4)
            .find_map(brand_format)
    };
    major.or_else(compatible).unwrap_or(FileFormat::Mp4)
}

fn brand_format(brand: &[u8]) -> Option<FileFormat> {
    match brand {
        b"M4A " | b"M4B " | b"M4P " | b"F4A " | b"F4B " => Some(FileFormat::M4a),
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"mif2" | b"msf1"
        | b"avif" | b"avis" => Some(FileFormat::Heif),
        b"isom" | b"iso2" | b"iso3" | b"iso4" | b"iso5" | b"iso6" | b"iso7" | b"iso8" | b"iso9"
        | b"mp41" | b"mp42" | b"avc1" | b"qt  " | b"M4V " | b"M4VH" | b"M4VP" | b"3gp4"
        | b"3gp5" | b"3gp6" | b"3gp7" | b"3gp8" | b"3g2a" | b"3g2b" | b"3g2c" | b"dash"
        | b"mmp4" | b"MSNV" | b"F4V " | b"F4P " | b"NDAS" | b"XAVC" | b"cmfc" | b"cmf2" => {
            Some(FileFormat::Mp4)
        }
        _ => None,
    }
}

/// Ogg: look at the first packet of the first page.
fn ogg(b: &[u8]) -> FileFormat {
    const AUDIO: [&[u8]; 4] = [b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex   "];
    let segments = b.get(26).map_or(0, |&n| usize::from(n));
    let packet = b.get(27 + segments..).unwrap_or(&[]);
    if AUDIO.iter().any(|sig| packet.starts_with(sig)) {
        FileFormat::OggAudio
    } else {
        FileFormat::OggVideo
    }
}

/// Old QuickTime files start with a top-level atom other than `ftyp`.
fn is_quicktime_without_ftyp(b: &[u8]) -> bool {
    let Some(head) = b.get(0..8) else {
        return false;
    };
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    (size >= 8 || size == 1) && matches!(&head[4..8], b"moov" | b"mdat" | b"wide" | b"pnot")
}

/// MPEG-TS: sync byte 0x47 at every packet start we can see, at least two of them.
fn is_mpeg_ts(b: &[u8]) -> bool {
    let syncs = |first: usize, stride: usize| {
        let starts = (first..b.len()).step_by(stride);
        let count = starts.clone().count();
        count >= 2 && starts.take(3).all(|i| b[i] == 0x47)
    };
    syncs(0, 188) || syncs(4, 192)
}

/// AAC ADTS header: 12-bit sync, layer 0, a valid sampling index and frame length.
fn is_adts(b: &[u8]) -> bool {
    if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
        return false;
    }
    let sampling_index = (b[2] >> 2) & 0x0F;
    let frame_len =
        (usize::from(b[3] & 0x03) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
    sampling_index < 13 && frame_len >= 7
}

/// MPEG audio frame header: 11-bit sync and no reserved field values.
fn is_mpeg_audio_frame(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return false;
    }
    let version = (b[1] >> 3) & 0x03;
    let layer = (b[1] >> 1) & 0x03;
    let bitrate = b[2] >> 4;
    let sample_rate = (b[2] >> 2) & 0x03;
    version != 1 && layer != 0 && bitrate != 0 && bitrate != 15 && sample_rate != 3
}
