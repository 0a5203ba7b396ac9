import Metrics
import Mixtral
import Prometheus
import Synchronization

// Counter, Gauge and Recorder below are swift-metrics' (Prometheus has types of the same names).

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of its
/// own (so several servers in one process, as in tests, do not share counts) and served as
/// Prometheus text at GET /metrics.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let promptTokens: Metrics.Counter
    let generatedTokens: Metrics.Counter
    let requestLatency: Metrics.Timer
    let firstTokenLatency: Metrics.Timer
    let stepLatency: Metrics.Timer
    let batchSequences: Metrics.Recorder
    let waiting: Metrics.Gauge
    let active: Metrics.Gauge
    let cachePositions: Metrics.Gauge
    let cacheBytes: Metrics.Gauge
    let cancelled: Metrics.Counter
    let keptCacheBytes: Metrics.Gauge
    let reusedPromptTokens: Metrics.Counter
    /// The scheduler's running total of reused prompt tokens when last counted.
    private let reusedCounted = Mutex(0)
    /// Tokens run and seconds spent in forward steps, for expert streaming's per-token
    /// figures.
    private let stepTotals = Mutex((tokens: 0, seconds: 0.0))
    /// Expert streaming's counters when last exported (counters advance by the difference).
    private let streamingCounted = Mutex(ExpertStreamingStats())

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                   .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
        factory.defaultDurationHistogramBuckets = seconds
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64]
        self.factory = factory
        promptTokens = Metrics.Counter(label: "mixtral_prompt_tokens_total", factory: factory)
        generatedTokens = Metrics.Counter(label: "mixtral_generated_tokens_total", factory: factory)
        requestLatency = Metrics.Timer(label: "mixtral_request_duration_seconds", factory: factory)
        firstTokenLatency = Metrics.Timer(label: "mixtral_time_to_first_token_seconds", factory: factory)
        stepLatency = Metrics.Timer(label: "mixtral_forward_step_seconds", factory: factory)
        batchSequences = Metrics.Recorder(label: "mixtral_batch_sequences", aggregate: true, factory: factory)
        waiting = Metrics.Gauge(label: "mixtral_queue_depth", factory: factory)
        active = Metrics.Gauge(label: "mixtral_active_sequences", factory: factory)
        cachePositions = Metrics.Gauge(label: "mixtral_kv_cache_positions", factory: factory)
        cacheBytes = Metrics.Gauge(label: "mixtral_kv_cache_bytes", factory: factory)
        cancelled = Metrics.Counter(label: "mixtral_cancelled_sequences_total", factory: factory)
        keptCacheBytes = Metrics.Gauge(label: "mixtral_prefix_cache_bytes", factory: factory)
        // A counter (a *_total is one for Prometheus): advanced by the growth of the
        // scheduler's running total at each update.
        reusedPromptTokens = Metrics.Counter(label: "mixtral_prefix_reused_tokens_total", factory: factory)
    }

    /// Counts one finished request by endpoint and status code.
    func request(endpoint: String, status: Int) {
        Metrics.Counter(label: "mixtral_requests_total", dimensions: [("endpoint", endpoint), ("status", String(status))],
                factory: factory).increment()
    }

    func record(_ step: BatchScheduler.Step) {
        stepLatency.recordNanoseconds(Int64(step.seconds * 1e9))
        batchSequences.record(step.sequences)
        stepTotals.withLock { $0 = ($0.tokens + step.tokens, $0.seconds + step.seconds) }
    }

    /// Expert streaming (`--ram-budget`): counters of expert calls, hits, bytes read and
    /// time waiting for reads, and since the start the hit rate, prefetch accuracy, bytes
    /// read per token and the share of forward-step time spent waiting for reads.
    func update(streaming stats: ExpertStreamingStats) {
        let new = streamingCounted.withLock { counted in
            defer { counted = stats }
            return stats.since(counted)
        }
        let counters: [(String, Int)] = [
            ("mixtral_expert_calls_total", new.uses), ("mixtral_expert_hits_total", new.hits),
            ("mixtral_expert_prefetch_hits_total", new.prefetchHits), ("mixtral_expert_misses_total", new.misses),
            ("mixtral_expert_bytes_read_total", new.bytesRead),
        ]
        for (label, increment) in counters {
            Metrics.Counter(label: label, factory: factory).increment(by: max(0, increment))
        }
        Metrics.FloatingPointCounter(label: "mixtral_expert_wait_seconds_total", factory: factory).increment(by: max(0, new.waitSeconds))
        let totals = stepTotals.withLock { $0 }
        Metrics.Gauge(label: "mixtral_expert_hit_ratio", factory: factory).record(stats.hitRate)
        Metrics.Gauge(label: "mixtral_expert_prefetch_accuracy", factory: factory).record(stats.prefetchAccuracy)
        Metrics.Gauge(label: "mixtral_expert_bytes_read_per_token", factory: factory)
            .record(Double(stats.bytesRead) / Double(max(1, totals.tokens)))
        Metrics.Gauge(label: "mixtral_expert_io_wait_share", factory: factory).record(stats.waitSeconds / max(1e-9, totals.seconds))
        Metrics.Gauge(label: "mixtral_expert_slots", factory: factory).record(stats.slots)
    }

    func update(_ stats: BatchScheduler.Stats) {
        waiting.record(stats.waiting)
        active.record(stats.active)
        cachePositions.record(stats.cachedPositions)
        cacheBytes.record(stats.cacheBytes)
        keptCacheBytes.record(stats.keptCacheBytes)
        let newlyReused = reusedCounted.withLock { counted in
            defer { counted = max(counted, stats.reusedPromptTokens) }
            return max(0, stats.reusedPromptTokens - counted)
        }
        if newlyReused > 0 { reusedPromptTokens.increment(by: newlyReused) }
    }

    /// Prometheus text exposition.
    func exposition() -> String { registry.emitToString() }
}
