// Counts how many iterations one loop of one invocation really runs when asked for
// probe[0]: Mesa's llvmpipe (lavapipe) ends every loop of an invocation after 65 535
// iterations in all, silently; other devices run them all. The host reads probe[1].

@group(0) @binding(0) var<storage, read_write> probe: array<u32, 2>;

@compute @workgroup_size(1)
fn probe_loops() {
    var n = 0u;
    for (var i = 0u; i < probe[0]; i++) {
        n += 1u;
    }
    probe[1] = n;
}
