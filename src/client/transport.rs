//! One write per request for the HTTP agent: ureq writes a request's head
//! and its body in two calls, and each went out as its own segment, waking
//! the server once for the head and again for the body. This transport holds
//! what is written and sends it in one piece just before the answer is
//! awaited (or once a large body has piled up).

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

/// Above this many held bytes the transport writes without waiting for the
/// end of the request: a large body is streamed, not copied whole.
const HOLD_LIMIT: usize = 64 * 1024;

/// The agent's connector: ureq's own chain (TCP, TLS), then [`CoalescingConnector`].
pub fn connector() -> impl Connector {
    DefaultConnector::default().chain(CoalescingConnector)
}

/// The last link of the agent's connector chain: wraps the TCP (or TLS)
/// transport in a [`Coalescing`] one.
#[derive(Debug, Default)]
pub struct CoalescingConnector;

impl Connector<Box<dyn Transport>> for CoalescingConnector {
    type Out = Coalescing;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Coalescing>, ureq::Error> {
        Ok(chained.map(|inner| Coalescing {
            inner,
            held: Vec::new(),
            timeout: None,
        }))
    }
}

/// A transport that holds writes until the answer is awaited.
#[derive(Debug)]
pub struct Coalescing {
    inner: Box<dyn Transport>,
    held: Vec<u8>,
    /// The write timeout of the latest held write.
    timeout: Option<NextTimeout>,
}

impl Coalescing {
    /// Writes what is held through the inner transport's output buffer.
    fn flush(&mut self) -> Result<(), ureq::Error> {
        let Some(timeout) = self.timeout.take() else {
            return Ok(());
        };
        let mut sent = 0;
        while sent < self.held.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.held.len() - sent);
            output[..n].copy_from_slice(&self.held[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.held.clear();
        Ok(())
    }
}

impl Transport for Coalescing {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let output = &self.inner.buffers().output()[..amount];
        self.held.extend_from_slice(output);
        self.timeout = Some(timeout);
        if self.held.len() >= HOLD_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush()?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush()?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
