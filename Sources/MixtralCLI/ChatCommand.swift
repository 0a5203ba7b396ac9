import ArgumentParser
import Foundation
import Mixtral

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with an instruct model through its chat template.",
        discussion: """
        Reads one user message per line from standard input and answers each, keeping the \
        conversation (an empty line or end of input ends it). --message answers one message and exits. \
        Messages are formatted by the model's chat template (tokenizer_config.json), or by \
        mistral-common's instruct format for a bare Mistral tokenizer.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Answer this one message and exit.")
    var message: String?
    @Option(name: .long, help: "System prompt.")
    var system: String?
    @OptionGroup var sampling: SamplingOptions

    func run() throws { try runOnRanks(chat) }

    /// Split over several ranks, rank 0 reads the messages (mpiexec gives it the standard
    /// input), encodes them and broadcasts each turn's prompt; every rank then runs the same
    /// generation (see `LanguageModel.generate`), and only rank 0 prints.
    private func chat() throws {
        let bundle = try modelOptions.load(splitOverRanks: true)
        let communicator = bundle.model.communicator
        let isRoot = communicator.rank == 0
        let encoder = try bundle.chatEncoder()
        var options = try sampling.options(bundle)
        if sampling.maxNewTokens == nil { options.maxNewTokens = max(options.maxNewTokens, 512) }
        var messages: [ChatMessage] = system.map { [.system($0)] } ?? []
        let interactive = message == nil
        while true {
            var prompt: [Int] = []  // empty: the conversation ends
            if isRoot {
                var text = message
                if text == nil {
                    FileHandle.standardError.write(Data("> ".utf8))
                    if let line = readLine(), !line.isEmpty { text = line }
                }
                if let text {
                    messages.append(.user(text))
                    prompt = try encoder.encode(messages: messages)
                }
            }
            prompt = communicator.broadcast(ids: prompt)
            guard !prompt.isEmpty else { return }
            let cache = bundle.model.makeCache(maxPositions: sampling.ctx)
            let result = try bundle.model.generate(prompt: prompt, options: options, cache: cache,
                                                   tokenizer: bundle.tokenizer) { token in
                if isRoot { printFlush(token.text) }
                return true
            }
            if isRoot {
                print()
                messages.append(.assistant(result.text.trimmingCharacters(in: CharacterSet.whitespaces)))
                log(String(format: "(%d tokens, %.1f tokens/s)", result.generatedIDs.count, result.generatedTokensPerSecond))
            }
            if !interactive { return }
        }
    }
}
