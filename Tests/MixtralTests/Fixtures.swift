import Foundation

/// Paths of the committed test fixtures (made by scripts/parity/make_fixtures.py).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let parityNames = ["mixtral-gqa", "mixtral-sliding", "mistral-dense", "llama-tied", "mixtral-bf16", "mixtral-sharded"]

    static func parity(_ name: String) -> String { root + "/parity/" + name }

    struct Reference: Decodable {
        let prompt_ids: [Int]
        let greedy_ids: [Int]
        let greedy_eos_ids: [Int]
    }

    static func reference(_ name: String) throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: parity(name) + "/reference.json"))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    /// A fresh temporary folder, removed by the caller.
    static func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "mixtral-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
