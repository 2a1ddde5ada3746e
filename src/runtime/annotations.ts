// Annotations tinyc itself puts in the configs it writes.

/** The annotation by which a container made from an image names its overlay's folders. */
export const OVERLAY_ANNOTATION = "run.tinyc.overlay";
