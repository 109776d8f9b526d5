//! Opens the GPU context the way every GPU test does, so a broken driver set-up shows first.

#[test]
fn gpu_context_opens_or_skips_clearly() {
    let Some(context) = hashgrad::gpu::context_for_tests() else {
        return;
    };
    context.wait_idle().expect("idle device");
    assert!(!context.adapter_name().is_empty());
    eprintln!("GPU adapter: {}", context.adapter_name());
}
