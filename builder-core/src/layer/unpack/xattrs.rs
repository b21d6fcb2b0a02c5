//! Which extended attributes from a layer are applied.
//!
//! File capabilities (`security.capability`) and `user.*` attributes are part of an image's
//! contents. `trusted.*` attributes can only be set with `CAP_SYS_ADMIN`, so they are applied
//! only when unpacking as root. Overlay's own attributes (`trusted.overlay.*`,
//! `user.overlay.*`) are never taken from a layer: in an overlay lower directory they would
//! redirect lookups or fake whiteouts, so only the unpacker itself writes them. Other namespaces
//! (SELinux labels, ACLs) describe the machine that built the layer, not the image.

/// Whether a layer's attribute `name` is applied.
pub(crate) fn allowed(name: &[u8], as_root: bool) -> bool {
    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
        return false;
    }
    name == b"security.capability"
        || name.starts_with(b"user.")
        || (as_root && name.starts_with(b"trusted."))
}

/// The attribute that marks an overlay directory opaque.
pub(crate) fn opaque_name(user_xattr: bool) -> &'static [u8] {
    if user_xattr {
        b"user.overlay.opaque"
    } else {
        b"trusted.overlay.opaque"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_user_attributes_are_kept() {
        assert!(allowed(b"security.capability", false));
        assert!(allowed(b"user.mime_type", false));
        assert!(allowed(b"trusted.md5", true));
    }

    #[test]
    fn overlay_and_foreign_attributes_are_dropped() {
        assert!(!allowed(b"trusted.md5", false));
        assert!(!allowed(b"trusted.overlay.opaque", true));
        assert!(!allowed(b"user.overlay.redirect", true));
        assert!(!allowed(b"security.selinux", true));
        assert!(!allowed(b"system.posix_acl_access", true));
    }
}
