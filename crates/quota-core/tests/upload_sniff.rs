//! A file's kind comes from its magic numbers, never from the type a client claims.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_sniff {
    use quota_core::upload::{FileFormat, FileKind, SNIFF_LEN};

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut b = (size as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(major);
        b.extend_from_slice(&[0, 0, 2, 0]);
        for brand in compatible {
            b.extend_from_slice(*brand);
        }
        b.extend_from_slice(b"\0\0\0\x08free");
        b
    }

    fn ogg_first_page(packet: &[u8]) -> Vec<u8> {
        let mut b = b"OggS\0\x02".to_vec();
        b.extend_from_slice(&[0; 20]); // granule, serial, sequence, crc
        b.push(1); // one segment
        b.push(packet.len() as u8);
        b.extend_from_slice(packet);
        b
    }

    fn riff(tag: &[u8; 4], form: &[u8; 4]) -> Vec<u8> {
        let mut b = tag.to_vec();
        b.extend_from_slice(&100u32.to_le_bytes());
        b.extend_from_slice(form);
        b.extend_from_slice(b"fmt \x10\0\0\0");
        b
    }

    fn mpeg_ts(stride: usize, offset: usize) -> Vec<u8> {
        let mut b = vec![0xFFu8; 3 * stride];
        for i in 0..3 {
            b[offset + i * stride] = 0x47;
        }
        b
    }

    fn bmp() -> Vec<u8> {
        let mut b = b"BM".to_vec();
        b.extend_from_slice(&70u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&54u32.to_le_bytes());
        b.extend_from_slice(&40u32.to_le_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    /// Every sample file we know, with the format it must be sniffed as.
    fn samples() -> Vec<(&'static str, Vec<u8>, FileFormat)> {
        use FileFormat::*;
        vec![
            ("png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), Png),
            (
                "jpeg",
                vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'],
                Jpeg,
            ),
            ("gif87", b"GIF87a\x01\0\x01\0".to_vec(), Gif),
            ("gif89", b"GIF89a\x01\0\x01\0".to_vec(), Gif),
            ("webp", riff(b"RIFF", b"WEBP"), WebP),
            ("bmp", bmp(), Bmp),
            ("tiff le", b"II*\0\x08\0\0\0".to_vec(), Tiff),
            ("tiff be", b"MM\0*\0\0\0\x08".to_vec(), Tiff),
            ("heic", ftyp(b"heic", &[b"mif1", b"heic"]), Heif),
            ("avif", ftyp(b"avif", &[b"avif", b"mif1", b"miaf"]), Heif),
            ("heif via compatible brand", ftyp(b"miaf", &[b"heic"]), Heif),
            ("jxl", b"\0\0\0\x0cJXL \r\n\x87\n".to_vec(), JpegXl),
            ("wav", riff(b"RIFF", b"WAVE"), Wav),
            ("rf64", riff(b"RF64", b"WAVE"), Wav),
            ("aiff", riff(b"FORM", b"AIFF"), Aiff),
            ("aifc", riff(b"FORM", b"AIFC"), Aiff),
            ("mp3 id3", b"ID3\x04\0\0\0\0\x01\0".to_vec(), Mp3),
            ("mp3 frame", vec![0xFF, 0xFB, 0x90, 0x64, 0, 0], Mp3),
            ("mp2 frame", vec![0xFF, 0xFD, 0x90, 0x64], Mp3),
            (
                "aac adts",
                vec![0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC],
                Aac,
            ),
            ("flac", b"fLaC\0\0\0\x22".to_vec(), Flac),
            (
                "ogg vorbis",
                ogg_first_page(b"\x01vorbis\0\0\0\0"),
                OggAudio,
            ),
            ("ogg opus", ogg_first_page(b"OpusHead\x01\x02"), OggAudio),
            ("ogg flac", ogg_first_page(b"\x7fFLAC\x01\0"), OggAudio),
            (
                "ogg theora",
                ogg_first_page(b"\x80theora\x03\x02"),
                OggVideo,
            ),
            ("ogg unknown stream", ogg_first_page(b"mystery!"), OggVideo),
            ("m4a", ftyp(b"M4A ", &[b"M4A ", b"mp42", b"isom"]), M4a),
            ("m4b", ftyp(b"M4B ", &[]), M4a),
            ("m4a via compatible brand", ftyp(b"XYZW", &[b"M4A "]), M4a),
            ("midi", b"MThd\0\0\0\x06\0\x01".to_vec(), Midi),
            ("amr", b"#!AMR\n".to_vec(), Amr),
            ("caf", b"caff\0\x01\0\0".to_vec(), Caf),
            (
                "mp4 isom",
                ftyp(b"isom", &[b"isom", b"iso2", b"avc1", b"mp41"]),
                Mp4,
            ),
            ("mp4 mp42", ftyp(b"mp42", &[b"mp42", b"isom"]), Mp4),
            ("mov", ftyp(b"qt  ", &[b"qt  "]), Mp4),
            ("3gp", ftyp(b"3gp4", &[]), Mp4),
            ("unknown ftyp brand", ftyp(b"zzzz", &[b"yyyy"]), Mp4),
            (
                "quicktime without ftyp",
                b"\0\0\0\x20moov\0\0\0\x18mvhd".to_vec(),
                Mp4,
            ),
            (
                "webm",
                vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81],
                Matroska,
            ),
            ("avi", riff(b"RIFF", b"AVI "), Avi),
            ("mpeg-ts", mpeg_ts(188, 0), MpegTs),
            ("m2ts", mpeg_ts(192, 4), MpegTs),
            ("mpeg-ps", vec![0, 0, 1, 0xBA, 0x44, 0, 4, 0], MpegPs),
            ("flv", b"FLV\x01\x05\0\0\0\x09".to_vec(), Flv),
            (
                "asf",
                vec![0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9],
                Asf,
            ),
        ]
    }

    #[test]
    fn every_known_signature_is_recognised_with_its_kind() {
        for (name, bytes, format) in samples() {
            assert_eq!(FileFormat::sniff(&bytes), Some(format), "{name}");
            assert_eq!(FileKind::sniff(&bytes), format.kind(), "{name}");
        }
    }

    #[test]
    fn kinds_follow_the_spec_groups() {
        use FileFormat::*;
        for f in [Png, Jpeg, Gif, WebP, Bmp, Tiff, Heif, JpegXl] {
            assert_eq!(f.kind(), FileKind::Image, "{f:?}");
        }
        for f in [Wav, Aiff, Mp3, Aac, Flac, OggAudio, M4a] {
            assert_eq!(f.kind(), FileKind::Audio, "{f:?}");
        }
        for f in [Mp4, Matroska, Avi, MpegTs, MpegPs, Flv, OggVideo] {
            assert_eq!(f.kind(), FileKind::Video, "{f:?}");
        }
    }

    #[test]
    fn text_and_unknown_bytes_are_other_whatever_they_claim_to_be() {
        // A client may label these audio/mpeg or image/png; only the bytes count.
        for bytes in [
            &b"{\"prompt\": \"a cat in a hat\"}"[..],
            b"--boundary\r\nContent-Type: image/png\r\n\r\n",
            b"Content-Type: audio/mpeg",
            b"PK\x03\x04\x14\0\0\0",
            b"BMP is not enough",
            b"GIF88a",
            b"RIFF\0\0\0\0WAVX",
            b"G is not a transport stream",
            &[0xFF, 0xFF, 0xFF, 0xFF],
            &[0xFF, 0xE0, 0x00, 0x00],
        ] {
            assert_eq!(
                FileKind::sniff(bytes),
                FileKind::Other,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn truncated_files_are_unknown_or_sniffed_as_their_container_family() {
        assert_eq!(FileKind::sniff(&[]), FileKind::Other);
        for (name, bytes, format) in samples() {
            for len in 0..bytes.len() {
                let sniffed = FileFormat::sniff(&bytes[..len]);
                // A truncated file is unknown or, for a container, the same
                // family (a truncated ftyp box is still ISO media).
                assert!(
                    sniffed.is_none()
                        || sniffed.map(FileFormat::kind) == Some(format.kind())
                        || matches!(sniffed, Some(FileFormat::Mp4 | FileFormat::OggVideo)),
                    "{name} cut at {len}: {sniffed:?}"
                );
            }
        }
    }

    #[test]
    fn one_mpeg_ts_packet_is_not_enough() {
        let packet = mpeg_ts(188, 0);
        assert_eq!(FileFormat::sniff(&packet[..188]), None);
        assert_eq!(FileFormat::sniff(&packet[..189]), Some(FileFormat::MpegTs));
    }

    #[test]
    fn bytes_past_sniff_len_are_ignored() {
        let mut padded = vec![0u8; SNIFF_LEN];
        padded.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        assert_eq!(FileKind::sniff(&padded), FileKind::Other);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(SNIFF_LEN * 4, 0xAB);
        assert_eq!(FileKind::sniff(&png), FileKind::Image);
    }

    #[test]
    fn sniffing_arbitrary_bytes_never_panics() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 600) as usize;
            let mut bytes = Vec::with_capacity(len);
            let mut s = state;
            for _ in 0..len {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                bytes.push((s >> 56) as u8);
            }
            let _ = FileKind::sniff(&bytes);
        }
    }
}
