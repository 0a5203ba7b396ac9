import NIOCore
import Synchronization

/// Notices a client that closed its side of the connection. Hummingbird keeps connections
/// open after the client's input closes (remote half-closure), so `Channel.isActive` stays
/// true until the server writes; a non-streamed completion writes only at the end. This
/// handler, one per connection, sees the `inputClosed` event and records it.
final class ConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    // Parts pass through untouched (never unwrapped), so the declared type is nominal.
    typealias InboundIn = Never

    private let closed = Atomic<Bool>(false)

    var inputClosed: Bool { closed.load(ordering: .relaxed) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            closed.store(true, ordering: .relaxed)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Whether the client of a request has gone: the connection closed or its input ended.
struct ClientConnection: Sendable {
    let channel: any Channel
    let watcher: ConnectionWatcher?

    init(_ channel: any Channel) async {
        self.channel = channel
        watcher = try? await channel.pipeline.handler(type: ConnectionWatcher.self).get()
    }

    var isGone: Bool { !channel.isActive || watcher?.inputClosed == true }
}
