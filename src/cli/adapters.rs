//! `hashgrad adapters`: lists the GPU adapters wgpu sees, with the index `--adapter` takes.

use clap::Args;

/// Arguments of `hashgrad adapters` (it takes none).
#[derive(Debug, Args)]
pub struct AdaptersArgs {}

/// Prints one line per GPU adapter wgpu finds, or a hint to install a Vulkan driver when there is
/// none.
pub fn run(_args: AdaptersArgs) -> anyhow::Result<()> {
    let adapters = crate::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. mesa-vulkan-drivers)");
    }
    for adapter in adapters {
        println!("{adapter}");
    }
    Ok(())
}
