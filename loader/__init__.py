"""Guest image loading: ELF kernels, raw images, initrd placement, symbols."""
from loader.image import KernelImage, load_kernel
from loader.initrd import plan_layout

__all__ = ["KernelImage", "load_kernel", "plan_layout"]
