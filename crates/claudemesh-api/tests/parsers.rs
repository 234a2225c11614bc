//! Property tests of the contract's parsers: whatever comes in (a pasted
//! token, a typed user code, a slug, a broker frame, a sealed message), they
//! answer without panicking, and what the contract makes parses back to
//! itself. `fuzz/` runs the same functions under libFuzzer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "property tests: a failure stops the test"
)]

use claudemesh_api::broker::{
    Attestation, ClientFrame, Hello, KeyBox, MessageKind, PeerStatus, Priority, SealedBody,
    SendRequest, ServerFrame,
};
use claudemesh_api::e2e::{self, KeyPair};
use claudemesh_api::{DeviceCode, Slug, Token, TokenKind, UserCode};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_a_token_or_a_reason(text in ".{0,120}") {
        let _ = Token::parse(&text);
    }

    #[test]
    fn token_like_text_never_panics(body in "[a-z0-9_]{0,90}", kind in prop::bool::ANY) {
        let prefix = if kind { "cm_pat_" } else { "cm_session_" };
        let _ = Token::parse(&format!("{prefix}{body}"));
    }

    #[test]
    fn every_token_parses_back_to_itself(random in prop::array::uniform32(any::<u8>()), pat in prop::bool::ANY) {
        let kind = if pat { TokenKind::Pat } else { TokenKind::Session };
        let token = Token::from_random(kind, random);
        let again = Token::parse(token.expose()).expect("a generated token parses");
        prop_assert_eq!(again.expose(), token.expose());
        prop_assert_eq!(again.kind(), kind);
        // Pasted with stray whitespace around it, it is the same token.
        let padded = format!("  {}\n", token.expose());
        let padded = Token::parse(&padded).expect("padded");
        prop_assert_eq!(padded.expose(), token.expose());
    }

    #[test]
    fn a_changed_character_is_caught_offline(random in prop::array::uniform32(any::<u8>()), at in 0usize..60, with in "[a-z2-7]") {
        let token = Token::from_random(TokenKind::Pat, random);
        let text = token.expose();
        let body_start = "cm_pat_".len();
        let at = body_start + at % (text.len() - body_start);
        let mut changed = text.to_owned();
        changed.replace_range(at..=at, &with);
        if changed != text {
            prop_assert!(Token::parse(&changed).is_err(), "{changed} passed the checksum");
        }
    }

    #[test]
    fn any_text_is_a_user_code_or_a_reason(text in ".{0,40}") {
        let _ = UserCode::parse(&text);
    }

    #[test]
    fn user_codes_parse_back_however_they_are_typed(_seed in 0u8..255, lower in prop::bool::ANY, dash in prop::bool::ANY) {
        let code = UserCode::generate();
        let shown = code.to_string();
        let mut typed = if dash { shown.clone() } else { shown.replace('-', "") };
        if lower {
            typed = typed.to_lowercase();
        }
        let parsed = UserCode::parse(&format!(" {typed} ")).expect("a generated code parses");
        prop_assert_eq!(parsed.compact(), code.compact());
    }

    #[test]
    fn any_text_is_a_device_code_or_a_reason(text in ".{0,80}") {
        let _ = DeviceCode::parse(&text);
    }

    #[test]
    fn any_text_is_a_slug_or_a_reason(text in ".{0,60}") {
        if let Ok(slug) = Slug::parse(&text) {
            let again = Slug::parse(slug.as_str()).expect("a slug parses");
            prop_assert_eq!(again.as_str(), slug.as_str());
        }
    }

    #[test]
    fn a_name_becomes_a_valid_slug_or_none(name in ".{0,80}", n in 2u32..10_000) {
        if let Some(slug) = Slug::from_name(&name) {
            prop_assert!(Slug::parse(slug.as_str()).is_ok(), "{}", slug.as_str());
            let suffixed = slug.with_suffix(n);
            prop_assert!(Slug::parse(suffixed.as_str()).is_ok(), "{}", suffixed.as_str());
        }
    }

    #[test]
    fn any_text_is_a_client_frame_or_an_error(text in ".{0,300}") {
        let _ = serde_json::from_str::<ClientFrame>(&text);
        let _ = serde_json::from_str::<ServerFrame>(&text);
    }

    #[test]
    fn json_shaped_frames_never_panic(kind in "(hello|send|ack|set_status|set_summary|list_peers|message_status|x)", body in "[ -~]{0,200}") {
        let _ = serde_json::from_str::<ClientFrame>(&format!(r#"{{"type":"{kind}",{body}}}"#));
    }

    #[test]
    fn client_frames_round_trip(req in any::<u64>(), text in ".{0,100}", ids in prop::collection::vec("[a-z0-9_]{1,20}", 0..5)) {
        let frames = vec![
            ClientFrame::Ack { ids },
            ClientFrame::SetSummary { summary: text.clone() },
            ClientFrame::SetStatus { status: PeerStatus::Dnd },
            ClientFrame::ListPeers { req },
            ClientFrame::MessageStatus { req, id: text.clone() },
            ClientFrame::Send(SendRequest {
                req,
                id: Some(text.clone()),
                kind: MessageKind::Group,
                group: Some(text.clone()),
                priority: Priority::Low,
                body: SealedBody { nonce: text.clone(), ciphertext: text.clone() },
                keys: vec![KeyBox { to: text.clone(), nonce: text.clone(), sealed: text.clone() }],
            }),
            ClientFrame::Hello(Hello {
                version: 1,
                mesh_id: text.clone(),
                member_key: text.clone(),
                session_key: text.clone(),
                attestation: Attestation { expires_at: i64::try_from(req / 2).unwrap_or(0), signature: text.clone(), rights: None },
                display_name: text.clone(),
                role: text.clone(),
                groups: vec![text.clone()],
                status: PeerStatus::Working,
                summary: text.clone(),
                signature: text,
                observer: req % 2 == 0,
            }),
        ];
        for frame in frames {
            let json = serde_json::to_string(&frame).expect("serialises");
            prop_assert_eq!(serde_json::from_str::<ClientFrame>(&json).expect("parses back"), frame);
        }
    }

}

proptest! {
    // Each case is a few X25519 operations: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_text_opens_to_itself(text in ".{0,300}", seeds in prop::array::uniform3(any::<u8>())) {
        let sender = KeyPair::from_seed(&[seeds[0]; 32]);
        let first = KeyPair::from_seed(&[seeds[1].wrapping_add(1); 32]);
        let second = KeyPair::from_seed(&[seeds[2].wrapping_add(2); 32]);
        let recipients = vec![first.public_hex(), second.public_hex()];
        let (body, boxes) = e2e::seal(&sender, &recipients, &text).expect("seals");
        prop_assert_eq!(e2e::open(&first, &sender.public_hex(), &body, &boxes[0]).expect("opens"), text.clone());
        prop_assert_eq!(e2e::open(&second, &sender.public_hex(), &body, &boxes[1]).expect("opens"), text);
    }

    #[test]
    fn garbage_never_opens_and_never_panics(nonce in "[A-Za-z0-9+/=!]{0,48}", sealed in "[A-Za-z0-9+/=!]{0,140}", ciphertext in "[A-Za-z0-9+/=]{0,80}", key in "[0-9a-f]{0,70}") {
        let me = KeyPair::from_seed(&[9; 32]);
        let body = SealedBody { nonce: nonce.clone(), ciphertext };
        let keybox = KeyBox { to: me.public_hex(), nonce, sealed };
        prop_assert!(e2e::open(&me, &key, &body, &keybox).is_err());
        prop_assert!(!e2e::verify(&key, b"message", &keybox.sealed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any message text is a relayed permission payload or an ordinary
    /// message, never a panic; a payload parses back to itself.
    #[test]
    fn any_text_is_a_permission_payload_or_an_ordinary_message(text in ".{0,300}") {
        if let Some(payload) = claudemesh_api::permission::Payload::parse(&text) {
            prop_assert_eq!(claudemesh_api::permission::Payload::parse(&payload.to_text()), Some(payload));
        }
    }

    #[test]
    fn json_shaped_permission_payloads_never_panic(kind in "(permission_request|permission_verdict|permission_outcome|x)", id in "[a-z]{0,6}", key in "[0-9a-f]{0,66}", signature in "[0-9a-f]{0,130}", behavior in "(allow|deny|maybe)") {
        let text = format!(
            r#"{{"claudemesh":"{kind}","request_id":"{id}","session_key":"{key}","behavior":"{behavior}","signature":"{signature}","tool_name":"Bash","description":"","input_preview":"{{}}","expires_at":1,"outcome":"applied"}}"#
        );
        if let Some(claudemesh_api::permission::Payload::PermissionVerdict(verdict)) = claudemesh_api::permission::Payload::parse(&text) {
            prop_assert!(!verdict.signed_by(&KeyPair::from_seed(&[3; 32]).public_hex(), "msh_1"));
        }
    }
}

proptest! {
    /// What a key box opens to: an older client's text, a sealed header and
    /// its text, or an error; never a panic. A header read back is written
    /// again to the same header and text (the fuzz target `sealed_header`
    /// says the same).
    #[test]
    fn any_plaintext_is_a_text_a_header_or_an_error(
        prefix in "(\u{0}claudemesh-sealed-v(1|2|x|)\n)?",
        json in "(\\{[ -~]{0,80}\\}|[ -~]{0,40})",
        text in "(?s).{0,60}",
    ) {
        let plain = format!("{prefix}{json}\n{text}");
        if let Ok((Some(header), rest)) = claudemesh_api::sealed::unwrap(&plain) {
            let again = claudemesh_api::sealed::wrap(&header, rest);
            prop_assert_eq!(
                claudemesh_api::sealed::unwrap(&again),
                Ok((Some(header.clone()), rest))
            );
        }
    }

    #[test]
    fn a_sealed_header_round_trips(
        id in proptest::option::of("msg_[0-9a-f]{32}"),
        group in proptest::option::of("[a-z]{1,10}"),
        to in prop::collection::vec("[0-9a-f]{64}", 1..5),
        sent_at in any::<i64>(),
        text in "(?s).{0,100}",
    ) {
        let header = claudemesh_api::sealed::SealedHeader {
            id,
            mesh_id: "msh_1".into(),
            session_key: "a".repeat(64),
            member_id: "mem_1".into(),
            kind: MessageKind::Group,
            group,
            priority: Priority::Low,
            to,
            sent_at,
        };
        let plain = claudemesh_api::sealed::wrap(&header, &text);
        prop_assert_eq!(
            claudemesh_api::sealed::unwrap(&plain),
            Ok((Some(header.clone()), text.as_str()))
        );
    }
}
