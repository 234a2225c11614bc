#![no_main]
//! Any opened plaintext: an older client's text, a sealed header and its
//! text, or an error, never a panic; a header read back is written again
//! to the same header and text.
use claudemesh_api::sealed::{unwrap, wrap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|plain: &str| {
    if let Ok((Some(header), text)) = unwrap(plain) {
        assert_eq!(unwrap(&wrap(&header, text)), Ok((Some(header.clone()), text)));
    }
});
