//! The source document's upload rules, one decision per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

// Tests sit in a module named after the feature so `cargo test upload` selects them.
mod upload_rules {
    use std::time::Duration;

    use quota_core::upload::{
        ByteSize, EndpointUploads, FileKind, UnknownDuration, UploadRefusal, UploadRules,
        MULTIPART_SLACK,
    };

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn image_of_exactly_10_mib_is_admitted_and_one_byte_more_is_refused() {
        let rules = UploadRules::seed();
        assert_eq!(
            rules.check_size("img2img", FileKind::Image, 10 * MIB),
            Ok(())
        );
        let refusal = rules
            .check_size("img2img", FileKind::Image, 10 * MIB + 1)
            .unwrap_err();
        assert_eq!(
            refusal,
            UploadRefusal::TooLarge {
                endpoint: "img2img".into(),
                kind: FileKind::Image,
                limit_bytes: 10 * MIB,
                size: 10 * MIB + 1
            }
        );
        assert_eq!(refusal.status_code(), 413);
        assert_eq!(
            refusal.message(),
            "image file exceeds the 10 MiB limit for img2img"
        );
    }

    #[test]
    fn audio_is_limited_to_10_mib_outside_aud2video() {
        let rules = UploadRules::seed();
        for endpoint in ["aud2txt", "audiofile2txt", "transcribe", "txt2img"] {
            assert_eq!(
                rules.max_size(endpoint, FileKind::Audio),
                10 * MIB,
                "{endpoint}"
            );
            assert!(rules
                .check_size(endpoint, FileKind::Audio, 10 * MIB)
                .is_ok());
            assert!(rules
                .check_size(endpoint, FileKind::Audio, 10 * MIB + 1)
                .is_err());
        }
    }

    #[test]
    fn aud2video_admits_audio_up_to_20_mib() {
        let rules = UploadRules::seed();
        assert!(rules
            .check_size("aud2video", FileKind::Audio, 20 * MIB)
            .is_ok());
        let refusal = rules
            .check_size("aud2video", FileKind::Audio, 20 * MIB + 1)
            .unwrap_err();
        assert_eq!(
            refusal.message(),
            "audio file exceeds the 20 MiB limit for aud2video"
        );
    }

    #[test]
    fn aud2video_raises_only_the_audio_limit() {
        let rules = UploadRules::seed();
        assert_eq!(rules.max_size("aud2video", FileKind::Image), 10 * MIB);
        assert_eq!(rules.max_size("aud2video", FileKind::Video), 10 * MIB);
        assert!(rules
            .check_size("aud2video", FileKind::Video, 10 * MIB + 1)
            .is_err());
    }

    #[test]
    fn video_is_limited_to_10_mib() {
        let rules = UploadRules::seed();
        assert!(rules
            .check_size("vid2txt", FileKind::Video, 10 * MIB)
            .is_ok());
        let refusal = rules
            .check_size("vid2txt", FileKind::Video, 10 * MIB + 1)
            .unwrap_err();
        assert_eq!(
            refusal.message(),
            "video file exceeds the 10 MiB limit for vid2txt"
        );
    }

    #[test]
    fn other_parts_get_the_largest_default_limit() {
        let rules = UploadRules::seed();
        assert_eq!(rules.max_size("txt2img", FileKind::Other), 10 * MIB);
        let refusal = rules
            .check_size("txt2img", FileKind::Other, 11 * MIB)
            .unwrap_err();
        assert_eq!(
            refusal.message(),
            "file exceeds the 10 MiB limit for txt2img"
        );
    }

    #[test]
    fn exactly_600_minutes_is_admitted_and_one_millisecond_more_is_refused() {
        let rules = UploadRules::seed();
        let limit = Duration::from_secs(600 * 60);
        for kind in [FileKind::Audio, FileKind::Video] {
            assert_eq!(rules.check_duration(kind, limit), Ok(()));
            let over = limit + Duration::from_millis(1);
            let refusal = rules.check_duration(kind, over).unwrap_err();
            assert_eq!(
                refusal,
                UploadRefusal::TooLong {
                    kind,
                    limit,
                    duration: over
                }
            );
            assert_eq!(refusal.status_code(), 422);
        }
    }

    #[test]
    fn too_long_message_names_the_limit() {
        let rules = UploadRules::seed();
        let refusal = rules
            .check_duration(FileKind::Audio, Duration::from_secs(601 * 60))
            .unwrap_err();
        assert_eq!(
            refusal.message(),
            "audio file lasts 601 minutes, over the 600 minutes duration limit"
        );
        let refusal = rules
            .check_duration(FileKind::Video, Duration::from_millis(600 * 60_000 + 1))
            .unwrap_err();
        assert_eq!(
            refusal.message(),
            "video file lasts 36000.001 s, over the 600 minutes duration limit"
        );
    }

    #[test]
    fn images_and_other_files_have_no_duration_limit() {
        let rules = UploadRules::seed();
        let long = Duration::from_secs(100_000 * 60);
        assert!(rules.check_duration(FileKind::Image, long).is_ok());
        assert!(rules.check_duration(FileKind::Other, long).is_ok());
    }

    #[test]
    fn unknown_duration_is_allowed_by_default_and_refused_when_configured() {
        let rules = UploadRules::seed();
        assert_eq!(rules.unknown_duration, UnknownDuration::Allow);
        assert!(rules.check_unknown_duration(FileKind::Audio).is_ok());

        let strict = UploadRules::seed().with_unknown_duration(UnknownDuration::Refuse);
        let refusal = strict.check_unknown_duration(FileKind::Video).unwrap_err();
        assert_eq!(refusal.status_code(), 422);
        assert_eq!(
            refusal.message(),
            "could not read the duration of the video file; the duration limit is 600 minutes"
        );
        assert!(strict.check_unknown_duration(FileKind::Image).is_ok());
    }

    #[test]
    fn body_limit_is_largest_file_limit_plus_multipart_slack() {
        let rules = UploadRules::seed();
        assert_eq!(rules.max_body("txt2img"), 10 * MIB + MULTIPART_SLACK);
        assert_eq!(rules.max_body("aud2video"), 20 * MIB + MULTIPART_SLACK);
        assert!(rules
            .check_body_size("aud2video", 20 * MIB + MULTIPART_SLACK)
            .is_ok());
        let refusal = rules.check_body_size("aud2video", 50 * MIB).unwrap_err();
        assert_eq!(refusal.status_code(), 413);
        assert_eq!(
            refusal.message(),
            "request body exceeds the 20 MiB limit for aud2video (plus 64 KiB for the multipart form around the file)"
        );
    }

    #[test]
    fn configured_body_limit_wins_over_the_derived_one() {
        let rules = UploadRules::seed().with_endpoint(
            "img2img",
            EndpointUploads::new().with_max_body(ByteSize::mib(25)),
        );
        assert_eq!(rules.max_body("img2img"), 25 * MIB);
        assert_eq!(rules.max_body("txt2img"), 10 * MIB + MULTIPART_SLACK);
        // A configured limit is said as configured, with no allowance.
        assert_eq!(rules.multipart_allowance("img2img"), 0);
        assert_eq!(
            rules
                .check_body_size("img2img", 30 * MIB)
                .unwrap_err()
                .message(),
            "request body exceeds the 25 MiB limit for img2img"
        );
    }

    #[test]
    fn exact_endpoint_override_beats_pattern_and_longest_pattern_wins() {
        let rules = UploadRules::seed()
            .with_endpoint(
                "prompt/*",
                EndpointUploads::new().with_limit(FileKind::Other, ByteSize::kib(64)),
            )
            .with_endpoint(
                "prompt/long/*",
                EndpointUploads::new().with_limit(FileKind::Other, ByteSize::kib(128)),
            )
            .with_endpoint(
                "prompt/enhance",
                EndpointUploads::new().with_limit(FileKind::Other, ByteSize::kib(1)),
            );
        assert_eq!(
            rules.max_size("prompt/anything", FileKind::Other),
            64 * 1024
        );
        assert_eq!(rules.max_size("prompt/long/x", FileKind::Other), 128 * 1024);
        assert_eq!(rules.max_size("prompt/enhance", FileKind::Other), 1024);
        assert_eq!(rules.max_size("promptx", FileKind::Other), 10 * MIB);
        assert_eq!(rules.max_size("prompt/anything", FileKind::Image), 10 * MIB);
    }

    #[test]
    fn seed_survives_a_toml_round_trip() {
        let rules = UploadRules::seed();
        let text = toml::to_string(&rules).unwrap();
        assert!(text.contains("image = \"10 MiB\""), "{text}");
        assert!(text.contains("max_duration_secs = 36000"), "{text}");
        let back: UploadRules = toml::from_str(&text).unwrap();
        assert_eq!(back, rules);
    }

    #[test]
    fn empty_toml_is_the_seed() {
        let rules: UploadRules = toml::from_str("").unwrap();
        assert_eq!(rules, UploadRules::seed());
    }

    #[test]
    fn toml_sizes_take_strings_or_byte_counts() {
        let rules: UploadRules = toml::from_str(
            "image = 1000\naudio = \"2 MB\"\nvideo = \"3GiB\"\n[endpoints.aud2video]\naudio = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(rules.max_size("x", FileKind::Image), 1000);
        assert_eq!(rules.max_size("x", FileKind::Audio), 2 * MIB);
        assert_eq!(rules.max_size("x", FileKind::Video), 3 << 30);
        assert_eq!(rules.max_size("aud2video", FileKind::Audio), 5 * MIB);
    }

    #[test]
    fn toml_with_a_bad_size_or_unknown_field_is_a_clear_error() {
        let err = toml::from_str::<UploadRules>("image = \"10 parsecs\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit \"parsecs\""), "{err}");
        let err = toml::from_str::<UploadRules>("image = -1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("negative"), "{err}");
        let err = toml::from_str::<UploadRules>("imgae = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("imgae"), "{err}");
        let err = toml::from_str::<UploadRules>("[endpoints.x]\nvideos = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("videos"), "{err}");
    }
}
