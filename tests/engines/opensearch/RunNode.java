import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.join.ParentJoinPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Starts one real OpenSearch node in this JVM for predwatch's tests.
 *
 * Why not OpenSearch's own main: its bootstrap refuses to run as root (our
 * machines and CI run as root) and expects an unpacked distribution. A Node
 * built directly, with the modules loaded as classpath plugins, is the same
 * server code (Lucene, mappings, aggregations, bulk) without that bootstrap.
 *
 * Usage: RunNode HOME HTTP_PORT PORT_FILE
 *   HOME       an empty, writable directory (config/, data/, logs/ go there)
 *   HTTP_PORT  a port, or 0 for any free one
 *   PORT_FILE  written with the bound HTTP port once the node has started
 * Stops (closing the node and deleting HOME) on SIGTERM/SIGINT. When the
 * process that started it is gone (killed with SIGKILL), it stops as well and
 * also deletes PORT_FILE's directory, since no one else is left to.
 */
public final class RunNode {

    private static final List<Class<? extends Plugin>> MODULES = List.of(
        Netty4Plugin.class,          // HTTP
        MapperExtrasPlugin.class,    // match_only_text, scaled_float
        CommonAnalysisPlugin.class,  // standard analyzers and tokenizers
        PainlessPlugin.class,        // scripts
        ReindexPlugin.class,         // _delete_by_query, _update_by_query
        ParentJoinPlugin.class       // join fields
    );

    private static final CountDownLatch STOPPED = new CountDownLatch(1);
    private static volatile boolean orphaned = false;

    /** Node's constructor that takes classpath plugins is protected. */
    private static final class PluginNode extends Node {
        PluginNode(Environment environment) {
            super(environment, MODULES, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: RunNode HOME HTTP_PORT PORT_FILE");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        String httpPort = args[1];
        Path portFile = Paths.get(args[2]).toAbsolutePath();
        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("plugins"));
        Files.createDirectories(home.resolve("modules"));
        try (var log4j = RunNode.class.getResourceAsStream("/log4j2.properties")) {
            Files.copy(log4j, config.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }

        Settings settings = Settings.builder()
            .put("cluster.name", "predwatch-test")
            .put("node.name", "predwatch-opensearch")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            // a shared test disk may be fuller than the production watermarks allow
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), config, () -> "predwatch-opensearch");
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName("predwatch-opensearch");
        LogConfigurator.configure(environment);

        Node node = new PluginNode(environment);
        Path launcherDir = portFile.getParent();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop(node, home);
            if (orphaned) {
                deleteTree(launcherDir);
            }
            STOPPED.countDown();
        }, "predwatch-stop"));
        watchParent();
        node.start();

        int port = node.injector().getInstance(HttpServerTransport.class)
            .boundAddress().publishAddress().getPort();
        Path partial = portFile.resolveSibling(portFile.getFileName() + ".part");
        Files.write(partial, (port + "\n").getBytes(StandardCharsets.US_ASCII));
        Files.move(partial, portFile, StandardCopyOption.ATOMIC_MOVE);
        System.err.println("RunNode: http on 127.0.0.1:" + port);
        // the node's own threads are daemons: without this the JVM would exit here
        STOPPED.await();
    }

    /** Stop when the launcher is gone (killed with SIGKILL), so no node outlives it. */
    private static void watchParent() {
        var parent = ProcessHandle.current().parent();
        if (parent.isEmpty()) {
            return;
        }
        Thread watcher = new Thread(() -> {
            while (parent.get().isAlive()) {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
            System.err.println("RunNode: launcher gone, stopping");
            orphaned = true;
            System.exit(0);
        }, "predwatch-parent-watch");
        watcher.setDaemon(true);
        watcher.start();
    }

    private static void stop(Node node, Path home) {
        try {
            node.close();
            node.awaitClose(20, TimeUnit.SECONDS);
        } catch (IOException | InterruptedException | RuntimeException e) {
            System.err.println("RunNode: close failed: " + e);
        }
        deleteTree(home);
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            System.err.println("RunNode: could not delete " + root + ": " + e);
        }
    }
}
