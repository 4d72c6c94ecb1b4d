import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The exporter's HTTP endpoint on SwiftNIO: `GET /metrics` (Prometheus text format 0.0.4),
/// `GET /` (a page pointing there), `HEAD` of both. Anything else is answered with a 4xx:
/// 404 for another path, 405 for another method, 400 for a request NIO's HTTP parser rejects
/// (`HTTPServerProtocolErrorHandler`), 413 for a request with a body over 64 KiB, 431 (and the
/// connection closed) for a request whose bytes pass 128 KiB before it ends; a connection idle
/// for a minute is closed. Never a crash.
public final class MetricsServer: Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
    let registry: PrometheusCollectorRegistry
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel

    /// Binds `host:port` (port 0: any free port, see `port`).
    public init(host: String, port: Int, registry: PrometheusCollectorRegistry) throws {
        self.registry = registry
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let limit = RequestLimit()
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    try channel.pipeline.syncOperations.addHandler(limit)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(registry: registry, limit: limit))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public func wait() throws { try channel.closeFuture.wait() }

    public func close() throws {
        try channel.close().wait()
        try group.syncShutdownGracefully()
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        static let maxBody = 64 << 10

        let registry: PrometheusCollectorRegistry
        let limit: RequestLimit
        var head: HTTPRequestHead?
        var bodyBytes = 0
        var tooLarge = false

        init(registry: PrometheusCollectorRegistry, limit: RequestLimit) {
            self.registry = registry
            self.limit = limit
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case let .head(request):
                head = request
                bodyBytes = 0
                tooLarge = false
            case let .body(buffer):
                bodyBytes += buffer.readableBytes
                if bodyBytes > Self.maxBody, !tooLarge, let head {
                    tooLarge = true
                    respond(context: context, head: head, status: .payloadTooLarge, body: "request body over 64 KiB\n", close: true)
                }
            case .end:
                limit.bytes = 0
                guard let request = head, !tooLarge else { return }
                head = nil
                answer(context: context, request: request)
            }
        }

        /// A request the HTTP parser rejected (answered with 400 before this handler) or a socket
        /// error: the connection is closed.
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        func answer(context: ChannelHandlerContext, request: HTTPRequestHead) {
            let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard path == "/metrics" || path == "/" else {
                respond(context: context, head: request, status: .notFound, body: "not found: try /metrics\n")
                return
            }
            guard request.method == .GET || request.method == .HEAD else {
                respond(context: context, head: request, status: .methodNotAllowed, body: "only GET and HEAD\n",
                        extra: [("Allow", "GET, HEAD")])
                return
            }
            if path == "/" {
                respond(context: context, head: request, status: .ok,
                        body: "<html><head><title>topo-preempt-exporter</title></head><body><h1>topo-preempt-exporter</h1>"
                            + "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
                        contentType: "text/html; charset=utf-8")
                return
            }
            respond(context: context, head: request, status: .ok, bytes: registry.emitToBuffer(), contentType: MetricsServer.contentType)
        }

        func respond(context: ChannelHandlerContext, head request: HTTPRequestHead, status: HTTPResponseStatus, body: String,
                     contentType: String = "text/plain; charset=utf-8", extra: [(String, String)] = [], close: Bool = false) {
            respond(context: context, head: request, status: status, bytes: Array(body.utf8), contentType: contentType, extra: extra, close: close)
        }

        func respond(context: ChannelHandlerContext, head request: HTTPRequestHead, status: HTTPResponseStatus, bytes: [UInt8],
                     contentType: String, extra: [(String, String)] = [], close: Bool = false) {
            let keepAlive = request.isKeepAlive && !close
            var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.count))])
            for (name, value) in extra { headers.add(name: name, value: value) }
            headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            if request.method != .HEAD {
                var buffer = context.channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                // A refused request's client may still be sending: half-close, so that it reads the answer.
                if !keepAlive { channel.close(mode: close ? .output : .all, promise: nil) }
            }
        }
    }

    /// Bytes of the request being read, before NIO's HTTP decoder (which bounds no header size):
    /// past `maxBytes` the client gets a 431 and the connection is closed. Also closes an idle
    /// connection.
    final class RequestLimit: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        static let maxBytes = 128 << 10
        var bytes = 0
        var refused = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !refused else { return }
            bytes += unwrapInboundIn(data).readableBytes
            guard bytes > Self.maxBytes else {
                context.fireChannelRead(data)
                return
            }
            refused = true
            let text = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
            buffer.writeString(text)
            let channel = context.channel
            // Half-close: the client reads the answer; what it still sends is dropped until it closes.
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(mode: .output, promise: nil) }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }
    }
}
