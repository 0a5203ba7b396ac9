import Foundation
import MixtralCKernels
import MixtralKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Experts read from the model file on demand into a fixed pool of slots (expert
/// offloading, as in Eliseev & Mazur 2023): the model's dense weights stay resident, and
/// a layer's experts are pinned in slots while it runs them. A dense model's MLP counts as
/// its layer's one expert.
///
/// The bytes in a slot are the file's bytes, so the products, and the logits, are those of
/// the resident model bit for bit. Reads go through `DirectReader` with O_DIRECT: the page
/// cache would otherwise keep a second copy of what the slots hold and push the process
/// past its budget.
final class ExpertStreamer: @unchecked Sendable {
    /// Where one of an expert's matrices lies: its file, offset and shape.
    private struct MatrixSource {
        let file: Int
        let offset: Int
        let matrix: WeightMatrix
    }

    private struct Key: Hashable {
        let layer: Int
        let expert: Int
    }

    private struct Slot {
        var key: Key?
        /// The reads that fill the slot; nil once they are done and checked.
        var job: DirectReader.Job?
        var pins = 0
        var lastUse = 0
        /// Loaded by a prefetch and not used since.
        var prefetched = false
    }

    /// O_DIRECT needs file offsets, lengths and buffers aligned to the device's blocks.
    private static let alignment = 4096
    /// Reads are cut into pieces of this size so that one expert keeps several threads busy.
    private static let readPiece = 4 << 20

    let options: ExpertStreamingOptions
    let slotCount: Int
    let slotBytes: Int
    private let sources: [[[MatrixSource]]]  // [layer][expert][gate, up, down]
    private let files: [(path: String, fd: Int32)]
    /// Offset of each of the three matrices' regions in a slot.
    private let regionOffsets: [Int]
    private let memory: UnsafeMutableRawPointer
    private let memoryLength: Int
    private let reader: DirectReader

    private let condition = NSCondition()
    private var slots: [Slot]
    private var slotOfKey: [Key: Int] = [:]
    private var heldByLayer: [Int]
    /// Counts expert calls; recency and decay are measured in it.
    private var clock = 0
    private var useCounts: [Key: (count: Double, at: Int)] = [:]
    /// How often each layer ran (decaying like `useCounts`), and the share of a layer's
    /// experts one run picks, for the next-use policy's estimate.
    private var layerRuns: [Key: (count: Double, at: Int)] = [:]
    private let routedShare: Double
    /// Experts a prefetch guessed for a layer that has not routed yet.
    private var pendingGuesses: [Int: Set<Int>] = [:]
    private var counters = ExpertStreamingStats()

    /// `experts[layer]` are the layer's feed-forwards as the model loaded them: pointers
    /// into mapped weight files, which `store` turns into file offsets (nothing is read
    /// from those mappings). `denseBytes` counts the resident weights against the budget.
    init(experts: [[DecoderWeights.FeedForward]], routedPerToken: Int, store: any WeightStore, denseBytes: Int,
         options: ExpertStreamingOptions) throws(CheckpointError) {
        self.options = options
        routedShare = Double(routedPerToken) / Double(max(1, experts.first?.count ?? 1))
        var paths: [String] = []
        var sources: [[[MatrixSource]]] = []
        var regionSizes = [0, 0, 0]
        for layer in experts {
            var layerSources: [[MatrixSource]] = []
            for ffn in layer {
                var matrices: [MatrixSource] = []
                for (index, matrix) in [ffn.gate, ffn.up, ffn.down].enumerated() {
                    guard let location = store.fileLocation(of: matrix.base) else {
                        throw .streamingUnavailable(reason: "the experts of \(store.location) are not mapped from a file "
                            + "(--quantize converts them in memory); stream a file that holds them in the wanted type")
                    }
                    let file = paths.firstIndex(of: location.path) ?? { paths.append(location.path); return paths.count - 1 }()
                    matrices.append(MatrixSource(file: file, offset: location.offset, matrix: matrix))
                    regionSizes[index] = max(regionSizes[index],
                                             Self.alignUp(location.offset % Self.alignment + matrix.byteCount))
                }
                layerSources.append(matrices)
            }
            sources.append(layerSources)
        }
        self.sources = sources
        regionOffsets = [0, regionSizes[0], regionSizes[0] + regionSizes[1]]
        slotBytes = regionSizes.reduce(0, +)
        let expertCount = experts.reduce(0) { $0 + $1.count }
        let expertBytes = experts.first?.first.map { $0.gate.byteCount + $0.up.byteCount + $0.down.byteCount } ?? 0
        let room = options.ramBudget - denseBytes
        guard slotBytes > 0, room >= slotBytes else {
            throw .streamingUnavailable(reason: String(
                format: "a RAM budget of %@ does not hold the dense weights (%@) and one expert (%@); give at least %@",
                formatBytes(options.ramBudget), formatBytes(denseBytes), formatBytes(slotBytes), formatBytes(denseBytes + slotBytes)))
        }
        slotCount = min(expertCount, room / slotBytes)
        memoryLength = slotCount * slotBytes
        guard let mapping = mmap(nil, memoryLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mapping != MAP_FAILED else {
            throw .streamingUnavailable(reason: "cannot reserve \(formatBytes(memoryLength)) for the expert slots: \(String(cString: strerror(errno)))")
        }
        #if os(Linux)
        _ = madvise(mapping, memoryLength, 14)  // MADV_HUGEPAGE: decode reads the slots at memory bandwidth
        #endif
        memory = mapping
        var opened: [(path: String, fd: Int32)] = []
        var allDirect = true
        for path in paths {
            var direct: Int32 = 0
            let fd = mx_open_uncached(path, &direct)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                for file in opened { close(file.fd) }
                munmap(mapping, memoryLength)
                throw .unreadable(file: path, reason: reason)
            }
            allDirect = allDirect && direct != 0
            opened.append((path, fd))
        }
        files = opened
        slots = Array(repeating: Slot(), count: slotCount)
        heldByLayer = Array(repeating: 0, count: experts.count)
        reader = DirectReader(threads: options.ioThreads)
        counters.slots = slotCount
        counters.slotBytes = slotBytes
        counters.expertBytes = expertBytes
        counters.denseBytes = denseBytes
        counters.directIO = allDirect
    }

    deinit {
        reader.stop()
        for file in files { close(file.fd) }
        munmap(memory, memoryLength)
    }

    var statistics: ExpertStreamingStats {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    // MARK: Used by the model

    /// Notes which experts a layer's router picked, to score the guess made for it.
    func recordRouting(layer: Int, experts: [Int]) {
        condition.lock()
        defer { condition.unlock() }
        let run = Key(layer: layer, expert: -1)
        layerRuns[run] = (decayed(layerRuns[run], halfLifeTokens: 2) + 1, clock)
        guard let guess = pendingGuesses.removeValue(forKey: layer) else { return }
        counters.guessable += experts.count
        counters.guessedRight += experts.filter(guess.contains).count
    }

    /// Pins the first of `experts` (all of them when the slots allow, at least one) and
    /// starts the reads of those not in memory. Returns how many it pinned; `wait` then
    /// gives their matrices, `release` unpins them.
    func pin(layer: Int, experts: ArraySlice<Int>) -> Int {
        condition.lock()
        defer { condition.unlock() }
        while true {
            var pinned = 0
            for expert in experts {
                let key = Key(layer: layer, expert: expert)
                let index: Int
                if let cached = slotOfKey[key] {
                    index = cached
                    if slots[index].prefetched {
                        counters.prefetchHits += 1
                        slots[index].prefetched = false
                    } else {
                        counters.hits += 1
                    }
                    if let job = slots[index].job { reader.promote(job) }
                } else if let free = victim(for: layer, prefetch: false) {
                    index = free
                    evict(index)
                    load(index, key, prefetch: false)
                    counters.misses += 1
                } else {
                    break
                }
                slots[index].pins += 1
                noteUse(index, key)
                pinned += 1
            }
            if pinned > 0 || experts.isEmpty { return pinned }
            // No slot can be refilled now: wait for a prefetch to land, or for another
            // forward pass to unpin one.
            if let loading = slots.first(where: { $0.pins == 0 && $0.job != nil })?.job {
                condition.unlock()
                _ = reader.wait(loading)
                condition.lock()
            } else {
                condition.wait()
            }
        }
    }

    /// Whether a pinned expert's reads are done (so `wait` returns it at once).
    func isReady(layer: Int, expert: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard let index = slotOfKey[Key(layer: layer, expert: expert)] else { return false }
        return slots[index].job.map { reader.isDone($0) } ?? true
    }

    /// The matrices of pinned experts, once their reads are done.
    func wait(layer: Int, experts: [Int]) throws(ModelError) -> [DecoderWeights.FeedForward] {
        var result: [DecoderWeights.FeedForward] = []
        condition.lock()
        defer { condition.unlock() }
        for expert in experts {
            guard let index = slotOfKey[Key(layer: layer, expert: expert)], slots[index].pins > 0 else {
                throw .weightReadFailed("expert \(expert) of layer \(layer) was not pinned before use")
            }
            if let job = slots[index].job {
                condition.unlock()
                let started = DispatchTime.now().uptimeNanoseconds
                let failure = reader.wait(job)
                let waited = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                condition.lock()
                counters.waitSeconds += waited
                if slots[index].job === job { slots[index].job = nil }
                if let failure {
                    // The slot's bytes are incomplete: free it (pins included; `release`
                    // skips it); the next call rereads the expert.
                    slotOfKey[Key(layer: layer, expert: expert)] = nil
                    heldByLayer[layer] -= 1
                    slots[index] = Slot()
                    condition.broadcast()
                    throw .weightReadFailed(failure)
                }
            }
            result.append(matrices(slot: index, layer: layer, expert: expert))
        }
        return result
    }

    func release(layer: Int, experts: ArraySlice<Int>) {
        condition.lock()
        defer { condition.unlock() }
        for expert in experts {
            if let index = slotOfKey[Key(layer: layer, expert: expert)], slots[index].pins > 0 { slots[index].pins -= 1 }
        }
        condition.broadcast()
    }

    /// Starts reading experts a layer will probably need, into slots that are free or hold
    /// the experts the policy values least; never waits, never evicts a pinned expert, one
    /// still loading, or another unused guess.
    func prefetch(layer: Int, experts: Set<Int>) {
        condition.lock()
        defer { condition.unlock() }
        pendingGuesses[layer] = experts
        for expert in experts.sorted() {
            let key = Key(layer: layer, expert: expert)
            guard slotOfKey[key] == nil else { continue }
            guard let index = victim(for: layer, prefetch: true) else { return }
            evict(index)
            load(index, key, prefetch: true)
            slots[index].lastUse = clock
        }
    }

    // MARK: Slots

    private func matrices(slot index: Int, layer: Int, expert: Int) -> DecoderWeights.FeedForward {
        let base = memory + index * slotBytes
        let m = sources[layer][expert].enumerated().map { region, source in
            WeightMatrix(type: source.matrix.type, rows: source.matrix.rows, columns: source.matrix.columns,
                         base: UnsafeRawPointer(base + regionOffsets[region] + source.offset % Self.alignment))
        }
        return DecoderWeights.FeedForward(gate: m[0], up: m[1], down: m[2])
    }

    private func noteUse(_ index: Int, _ key: Key) {
        clock += 1
        counters.uses += 1
        slots[index].lastUse = clock
        useCounts[key] = (decayed(useCounts[key]) + 1, clock)
    }

    /// A count that halves every `tokens` tokens' worth of expert calls (at two per layer).
    private func decayed(_ entry: (count: Double, at: Int)?, halfLifeTokens tokens: Int = 16) -> Double {
        guard let (count, at) = entry else { return 0 }
        let halfLife = Double(tokens * max(1, heldByLayer.count) * 2)
        return count * pow(0.5, Double(clock - at) / halfLife)
    }

    /// Layers until `key` is expected to run again, seen from a load for layer `target`:
    /// the layers until its layer comes round (the target layer's other experts have just
    /// been routed past: a whole cycle), plus a whole cycle for each run that is expected
    /// not to pick it, from how often its router picked it (a prior of the routed share).
    private func expectedDistance(_ key: Key, from target: Int) -> Double {
        let layers = heldByLayer.count
        let ahead = ((key.layer - target - 1) % layers + layers) % layers + 1
        // Over the last few tokens: routing follows the text, so recent picks tell most (a
        // half-life of 2 tokens kept the most hits on the 8x7B-geometry file; 16 fewer).
        let runs = decayed(layerRuns[Key(layer: key.layer, expert: -1)], halfLifeTokens: 2)
        let picked = min(1, max(0.01, (decayed(useCounts[key], halfLifeTokens: 2) + routedShare) / (runs + 1)))
        return Double(ahead) + Double(layers) * (1 - picked) / picked
    }

    /// A slot to (re)fill for `layer`: a free one, else the one the policy values least
    /// among those not pinned and not loading (and, for a prefetch, not an unused guess).
    private func victim(for layer: Int, prefetch: Bool) -> Int? {
        var candidates: [(index: Int, key: Key)] = []
        for index in slots.indices where slots[index].pins == 0 {
            if let job = slots[index].job {
                guard reader.isDone(job) else { continue }
                slots[index].job = nil
                // A finished prefetch that failed holds nothing usable.
                if reader.wait(job) != nil, let key = slots[index].key {
                    slotOfKey[key] = nil
                    heldByLayer[key.layer] -= 1
                    slots[index].key = nil
                }
            }
            guard let key = slots[index].key else { return index }
            if prefetch && slots[index].prefetched { continue }
            candidates.append((index, key))
        }
        let lastUse = { (candidate: (index: Int, key: Key)) in self.slots[candidate.index].lastUse }
        let leastRecent = { (set: [(index: Int, key: Key)]) in set.min { lastUse($0) < lastUse($1) }?.index }
        switch options.policy {
        case .lru:
            return leastRecent(candidates)
        case .nextUse:
            return candidates.max {
                let a = expectedDistance($0.key, from: layer), b = expectedDistance($1.key, from: layer)
                return a != b ? a < b : lastUse($0) > lastUse($1)
            }?.index
        case .lfu:
            return candidates.min {
                let a = decayed(useCounts[$0.key]), b = decayed(useCounts[$1.key])
                return a != b ? a < b : lastUse($0) < lastUse($1)
            }?.index
        case .layerLRU:
            let share = max(1, slotCount / max(1, heldByLayer.count))
            if heldByLayer[layer] >= share, let own = leastRecent(candidates.filter { $0.key.layer == layer }) {
                return own
            }
            return leastRecent(candidates.filter { heldByLayer[$0.key.layer] > share }) ?? leastRecent(candidates)
        }
    }

    private func evict(_ index: Int) {
        guard let key = slots[index].key else { return }
        if slots[index].prefetched { counters.wastedPrefetches += 1 }
        slotOfKey[key] = nil
        heldByLayer[key.layer] -= 1
        slots[index] = Slot()
    }

    /// Starts the reads that fill slot `index` with the expert `key`.
    private func load(_ index: Int, _ key: Key, prefetch: Bool) {
        let base = memory + index * slotBytes
        var reads: [DirectReader.Read] = []
        for (region, source) in sources[key.layer][key.expert].enumerated() {
            let file = files[source.file]
            let start = source.offset / Self.alignment * Self.alignment
            let end = Self.alignUp(source.offset + source.matrix.byteCount)
            var offset = start
            while offset < end {
                let length = min(Self.readPiece, end - offset)
                let needed = min(length, source.offset + source.matrix.byteCount - offset)
                reads.append(.init(fd: file.fd, path: file.path, offset: offset, length: length, needed: needed,
                                   destination: base + regionOffsets[region] + (offset - start)))
                offset += length
            }
            counters.bytesRead += end - start
        }
        slots[index] = Slot(key: key, job: reader.submit(reads, urgent: !prefetch), pins: 0, lastUse: clock,
                            prefetched: prefetch)
        slotOfKey[key] = index
        heldByLayer[key.layer] += 1
    }

    private static func alignUp(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }
}

/// A byte count for messages: GiB, MiB or KiB.
public func formatBytes(_ bytes: Int) -> String {
    let value = Double(bytes)
    if value >= 1_073_741_824 { return String(format: "%.2f GiB", value / 1_073_741_824) }
    if value >= 1_048_576 { return String(format: "%.1f MiB", value / 1_048_576) }
    return String(format: "%.1f KiB", value / 1024)
}
