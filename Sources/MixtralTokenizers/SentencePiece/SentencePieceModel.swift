import Foundation

/// The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto) that encoding and
/// decoding use. Field numbers and defaults are those of the .proto file.
public struct SentencePieceModel: Sendable {
    public enum PieceType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable, Equatable {
        public var text: String
        public var score: Float
        public var type: PieceType
        public init(text: String, score: Float, type: PieceType) {
            self.text = text
            self.score = score
            self.type = type
        }
    }

    public enum ModelType: Int32, Sendable {
        case unigram = 1, bpe = 2, word = 3, char = 4
    }

    public var pieces: [Piece] = []
    // TrainerSpec (field numbers 3, 35, 40-47, 24)
    public var modelType: ModelType = .unigram
    public var byteFallback = false
    public var treatWhitespaceAsSuffix = false
    public var unkPiece = "<unk>"
    public var bosPiece = "<s>"
    public var eosPiece = "</s>"
    public var unkSurface = " \u{2047} "
    // NormalizerSpec (field numbers 1-5)
    public var normalizerName = ""
    public var precompiledCharsmapSize = 0
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true
    /// Whether the file has a denormalizer with a non-empty character map (unsupported).
    public var hasDenormalizerCharsmap = false

    public init() {}

    /// Parses a serialized ModelProto. `file` names the source in errors.
    public init(data: Data, file: String) throws {
        do {
            try data.withUnsafeBytes { raw in
                var reader = ProtobufReader(raw, range: 0..<raw.count)
                while let field = try reader.nextField() {
                    switch (field.number, field.wireType) {
                    case (1, .lengthDelimited):
                        pieces.append(try Self.parsePiece(raw, try reader.readLengthDelimited()))
                    case (2, .lengthDelimited):
                        try parseTrainerSpec(raw, try reader.readLengthDelimited())
                    case (3, .lengthDelimited):
                        try parseNormalizerSpec(raw, try reader.readLengthDelimited(), isDenormalizer: false)
                    case (5, .lengthDelimited):
                        try parseNormalizerSpec(raw, try reader.readLengthDelimited(), isDenormalizer: true)
                    default:
                        try reader.skip(field.wireType)
                    }
                }
            }
        } catch let error as ProtobufReader.DecodeError {
            throw TokenizerError.malformed(file: file, reason: "not a SentencePiece model: \(error.description)")
        }
        if pieces.isEmpty {
            throw TokenizerError.malformed(file: file, reason: "the SentencePiece model has no pieces")
        }
    }

    private static func parsePiece(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) throws -> Piece {
        var reader = ProtobufReader(raw, range: range)
        var piece = Piece(text: "", score: 0, type: .normal)
        while let field = try reader.nextField() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited): piece.text = try reader.readString()
            case (2, .fixed32): piece.score = try reader.readFloat()
            case (3, .varint):
                let raw = try reader.readInt32()
                guard let type = PieceType(rawValue: raw) else {
                    throw ProtobufReader.DecodeError(description: "unknown piece type \(raw)")
                }
                piece.type = type
            default: try reader.skip(field.wireType)
            }
        }
        return piece
    }

    private mutating func parseTrainerSpec(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) throws {
        var reader = ProtobufReader(raw, range: range)
        while let field = try reader.nextField() {
            switch (field.number, field.wireType) {
            case (3, .varint):
                let value = try reader.readInt32()
                guard let type = ModelType(rawValue: value) else {
                    throw ProtobufReader.DecodeError(description: "unknown model type \(value)")
                }
                modelType = type
            case (24, .varint): treatWhitespaceAsSuffix = try reader.readBool()
            case (35, .varint): byteFallback = try reader.readBool()
            case (44, .lengthDelimited): unkSurface = try reader.readString()
            case (45, .lengthDelimited): unkPiece = try reader.readString()
            case (46, .lengthDelimited): bosPiece = try reader.readString()
            case (47, .lengthDelimited): eosPiece = try reader.readString()
            default: try reader.skip(field.wireType)
            }
        }
    }

    private mutating func parseNormalizerSpec(
        _ raw: UnsafeRawBufferPointer, _ range: Range<Int>, isDenormalizer: Bool
    ) throws {
        var reader = ProtobufReader(raw, range: range)
        while let field = try reader.nextField() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited) where !isDenormalizer: normalizerName = try reader.readString()
            case (2, .lengthDelimited):
                let size = try reader.readLengthDelimited().count
                if isDenormalizer { hasDenormalizerCharsmap = size > 0 } else { precompiledCharsmapSize = size }
            case (3, .varint) where !isDenormalizer: addDummyPrefix = try reader.readBool()
            case (4, .varint) where !isDenormalizer: removeExtraWhitespaces = try reader.readBool()
            case (5, .varint) where !isDenormalizer: escapeWhitespaces = try reader.readBool()
            default: try reader.skip(field.wireType)
            }
        }
    }
}
