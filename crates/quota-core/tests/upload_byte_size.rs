//! `ByteSize`: MB means MiB, parsing is strict and errors say what to write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_byte_size {
    use quota_core::upload::{ByteSize, ByteSizeError};

    #[test]
    fn every_unit_is_a_power_of_1024() {
        let cases = [
            ("0", 0),
            ("17", 17),
            ("17B", 17),
            ("1k", 1024),
            ("1KB", 1024),
            ("1 KiB", 1024),
            ("10MB", 10 << 20),
            ("10 mib", 10 << 20),
            ("10M", 10 << 20),
            (" 2GB ", 2 << 30),
            ("1TiB", 1 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                text.parse::<ByteSize>(),
                Ok(ByteSize::bytes_exact(bytes)),
                "{text}"
            );
        }
    }

    #[test]
    fn display_uses_the_largest_exact_unit_and_parses_back() {
        for (size, text) in [
            (ByteSize::mib(10), "10 MiB"),
            (ByteSize::kib(20544), "20544 KiB"),
            (ByteSize::bytes_exact(1500), "1500 B"),
            (ByteSize::bytes_exact(0), "0 B"),
            (ByteSize::gib(3), "3 GiB"),
            (ByteSize::bytes_exact(u64::MAX), "18446744073709551615 B"),
        ] {
            assert_eq!(size.to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(size));
        }
    }

    #[test]
    fn malformed_sizes_are_refused_with_a_reason() {
        assert_eq!("".parse::<ByteSize>(), Err(ByteSizeError::Empty));
        assert_eq!("   ".parse::<ByteSize>(), Err(ByteSizeError::Empty));
        for text in ["MB", "1.5MB", "-1", "+1", "1,5MB", "ten"] {
            assert!(
                matches!(
                    text.parse::<ByteSize>(),
                    Err(ByteSizeError::InvalidNumber { .. })
                ),
                "{text}"
            );
        }
        let err = "10 mega".parse::<ByteSize>().unwrap_err();
        assert!(matches!(&err, ByteSizeError::UnknownUnit { unit, .. } if unit == "mega"));
        assert!(err.to_string().contains("powers of 1024"));
    }

    #[test]
    fn sizes_past_64_bits_overflow_instead_of_wrapping() {
        for text in ["99999999999999999999", "20000000TiB", "17179869184GiB"] {
            assert!(
                matches!(
                    text.parse::<ByteSize>(),
                    Err(ByteSizeError::Overflow { .. })
                ),
                "{text}"
            );
        }
        assert_eq!(ByteSize::mib(u64::MAX).bytes(), u64::MAX);
    }

    #[test]
    fn json_reads_numbers_and_strings_and_writes_strings() {
        let size: ByteSize = serde_json::from_str("\"20MB\"").unwrap();
        assert_eq!(size, ByteSize::mib(20));
        let size: ByteSize = serde_json::from_str("1024").unwrap();
        assert_eq!(size, ByteSize::kib(1));
        assert_eq!(
            serde_json::to_string(&ByteSize::mib(20)).unwrap(),
            "\"20 MiB\""
        );
        assert!(serde_json::from_str::<ByteSize>("1.5").is_err());
        assert!(serde_json::from_str::<ByteSize>("true").is_err());
    }
}
