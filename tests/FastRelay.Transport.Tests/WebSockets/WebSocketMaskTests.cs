using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

public class WebSocketMaskTests
{
    [Fact]
    public void Vectorised_unmask_matches_bytewise_xor_for_every_length_and_key_offset()
    {
        byte[] key = [0x12, 0x34, 0x56, 0x78];
        uint wireKey = WebSocketMask.ReadKey(key);
        byte[] source = new byte[200];
        new Random(3).NextBytes(source);

        for (int length = 0; length <= source.Length; length++)
        {
            for (int offset = 0; offset < 4; offset++)
            {
                byte[] actual = new byte[length];
                int next = WebSocketMask.Apply(source.AsSpan(0, length), actual, wireKey, offset);

                for (int i = 0; i < length; i++)
                {
                    Assert.Equal((byte)(source[i] ^ key[(offset + i) & 3]), actual[i]);
                }

                Assert.Equal((offset + length) & 3, next);
            }
        }
    }
}
