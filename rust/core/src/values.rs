//! Placeholder: filled in by the kernel work.
